"""Compressed ENet on an FPGA (ch13): procedural street scenes, QAT with fixed-point types that
match hls4ml's, hls4ml conversion and C simulation, the ZCU102 project and its PYNQ driver,
and an analytic resource/latency estimate."""
