"""The face-emotion CNN: a compact VGG/ResNet-style network for 48x48 greyscale crops (no torchvision)."""

import math

import torch
from torch import nn

#: Side of the square greyscale face crop the network sees.
INPUT_SIZE = 48


class ConvBlock(nn.Sequential):
    """3x3 convolution, batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ResidualStage(nn.Module):
    """Two conv blocks with an identity (or 1x1 projection) shortcut, then 2x2 max-pooling."""

    def __init__(self, in_channels: int, out_channels: int, *, pool: bool = True) -> None:
        super().__init__()
        self.conv1 = ConvBlock(in_channels, out_channels)
        self.conv2 = nn.Sequential(
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels)
        )
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        )
        self.act = nn.ReLU(inplace=True)
        self.pool: nn.Module = nn.MaxPool2d(2) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.conv2(self.conv1(x)) + self.shortcut(x))
        result: torch.Tensor = self.pool(out)
        return result


class EmotionNet(nn.Module):
    """Stem at 48x48, four residual stages (48->24->12->6->3), global pooling, dropout, linear head."""

    def __init__(
        self, widths: tuple[int, ...] = (32, 64, 128, 256), num_classes: int = 7, dropout: float = 0.3
    ) -> None:
        super().__init__()
        self.widths = widths
        self.stem = ConvBlock(1, widths[0])
        stages: list[nn.Module] = []
        previous = widths[0]
        for width in widths:
            stages.append(ResidualStage(previous, width))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(previous, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a (n, 1, 48, 48) batch normalised as in training."""
        logits: torch.Tensor = self.head(self.stages(self.stem(x)))
        return logits


class EmotionEnsemble(nn.Module):
    """Several independently trained networks as one: the output is the log of their mean softmax.

    Returning log-probabilities keeps the single network's contract (softmax of the output = the
    probabilities), so flip TTA, calibration and the ONNX export work on an ensemble unchanged.
    """

    def __init__(self, members: list[EmotionNet]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """log(mean_k softmax(member_k(x))) for a (n, 1, 48, 48) batch, computed stably in log space."""
        stacked = torch.stack([member(x).float().log_softmax(dim=1) for member in self.members])
        result: torch.Tensor = torch.logsumexp(stacked, dim=0) - math.log(len(self.members))
        return result


#: Pixel normalisation (x / 255 - mean) / std, shared by training and inference.
PIXEL_MEAN = 0.5
PIXEL_STD = 0.25


def normalize(images: torch.Tensor) -> torch.Tensor:
    """(n, 48, 48) or (n, 1, 48, 48) uint8/float pixels in 0..255 -> (n, 1, 48, 48) normalised floats."""
    x = images.float()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return (x / 255.0 - PIXEL_MEAN) / PIXEL_STD
