"""Captioner backends: `grounded` (offline default), `openai` (OpenAI-compatible server), `hf` (local)."""
