"""`python -m core serve`: an OpenAI-compatible chat endpoint over the project's own captioners and models."""
