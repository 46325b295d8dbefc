"""A deterministic linear model (no dropout) for the training loop's own checks: only the data order and the
optimizer can make two runs of it differ."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file


class Line(torch.nn.Module):
    def __init__(self, width: int = 3):
        super().__init__()
        self.fc = torch.nn.Linear(width, 1)

    def forward(self, batch):
        return {"loss": torch.nn.functional.mse_loss(self.fc(batch["x"]).squeeze(-1), batch["y"])}

    def save_pretrained(self, folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        save_file(self.state_dict(), str(Path(folder) / "model.safetensors"))
