"""Unit tests of ``reprobook.plotting``."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from reprobook import plotting


def test_use_book_style_runs():
    with plt.rc_context():
        plotting.use_book_style()
        assert plt.rcParams["savefig.dpi"] == 110
        for key in ("legend.fontsize", "xtick.labelsize", "ytick.labelsize", "axes.labelsize"):
            assert float(plt.rcParams[key]) >= 9, key  # readable at the figure's own size
    assert len(plotting.colors(3)) == 3


def test_book_style_shows_tables_whole():
    defaults = ("display.max_colwidth", 50, "display.max_columns", 20, "display.width", 80)
    with plt.rc_context(), pd.option_context(*defaults):  # leave other tests' settings alone
        plotting.use_book_style()
        long = "+0.063 ± 0.018, paired t-test p = 0.07; DPG better in 3 of 3 seeds"
        html = pd.DataFrame({"comparison": [long]})._repr_html_()
        assert long in html and "..." not in html


def test_errorbar_line_draws_one_line():
    fig, ax = plt.subplots()
    try:
        plotting.errorbar_line(ax, [1, 2, 3], [0.1, 0.2, 0.3], [0.01, 0.02, 0.01], label="m")
        assert len(ax.lines) == 1
        np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.1, 0.2, 0.3])
        assert len(ax.collections) == 1  # the shaded band
        assert ax.get_legend_handles_labels()[1] == ["m"]
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    ("x", "mean", "err"),
    [([1, 2, 3], [0.1, 0.2], [0.1, 0.2, 0.3]), ([1, 2], [0.1, 0.2], [0.1]), ([1, 2], [1, 2], 0.1)],
)
def test_errorbar_line_refuses_mismatched_shapes(x, mean, err):
    fig, ax = plt.subplots()
    try:
        with pytest.raises(ValueError, match="one shape"):
            plotting.errorbar_line(ax, x, mean, err, label="m")
        assert len(ax.lines) == 0
    finally:
        plt.close(fig)


def test_band_hline():
    fig, ax = plt.subplots()
    try:
        plotting.band_hline(ax, 0.5, 0.1, label="baseline")
        assert len(ax.lines) == 1
        assert ax.lines[0].get_ydata()[0] == 0.5
    finally:
        plt.close(fig)
