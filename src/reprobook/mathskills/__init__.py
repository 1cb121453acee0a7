"""AI-assisted generation of difficult math questions (MATH²): the mathskills topic package."""
