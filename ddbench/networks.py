"""The protocol's 32x32 networks (ConvNet-3, ResNet-10/18, AlexNet, VGG-11), all exposing named features.

Every network is a :class:`FeatureNet`: an ordered list of named stages, then a flatten (the penultimate
``embedding``), then a linear head. DM and Herding read the embedding; the proposed method's local loss reads
an intermediate stage (``block2`` by default). Shapes follow VICO-UoE/DatasetCondensation ``networks.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from ddbench.api import NetworkSpec
from ddbench.hookspecs import hookimpl

Norm = str  # "instancenorm" | "batchnorm" | "none"


def norm_layer(kind: Norm, channels: int) -> nn.Module:
    if kind == "instancenorm":  # the reference's instance norm: GroupNorm with one group per channel
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "batchnorm":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


class FeatureNet(nn.Module):
    """Named stages -> pool -> flatten (embedding) -> linear classifier."""

    def __init__(self, stages: Iterable[tuple[str, nn.Module]], embed_dim: int, num_classes: int,
                 pool: nn.Module | None = None) -> None:
        super().__init__()
        self.stages = nn.ModuleDict(stages)
        self.pool = pool or nn.Identity()
        self.embed_dim = embed_dim
        self.classifier = nn.Linear(embed_dim, num_classes)

    @property
    def feature_names(self) -> list[str]:
        return [*self.stages.keys(), "embedding", "logits"]

    def embed(self, x: Tensor) -> Tensor:
        for stage in self.stages.values():
            x = stage(x)
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.embed(x))

    def features(self, x: Tensor, names: Iterable[str] | None = None) -> dict[str, Tensor]:
        """Named intermediate outputs (``names`` None = all); stops early when the rest is not needed."""
        wanted = set(self.feature_names if names is None else names)
        unknown = wanted - set(self.feature_names)
        if unknown:
            raise KeyError(f"unknown feature {sorted(unknown)}; this network has {self.feature_names}")
        out: dict[str, Tensor] = {}
        for name, stage in self.stages.items():
            x = stage(x)
            if name in wanted:
                out[name] = x
            if wanted <= out.keys():
                return out
        emb = torch.flatten(self.pool(x), 1)
        if "embedding" in wanted:
            out["embedding"] = emb
        if "logits" in wanted:
            out["logits"] = self.classifier(emb)
        return out


def _conv_block(cin: int, cout: int, norm: Norm, pool: nn.Module | None) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1), norm_layer(norm, cout), nn.ReLU(inplace=True)]
    if pool is not None:
        layers.append(pool)
    return nn.Sequential(*layers)


def convnet(channels: int, num_classes: int, image_size: int = 32, *, width: int = 128, depth: int = 3,
            norm: Norm = "instancenorm") -> FeatureNet:
    """ConvNet-D: D x [Conv3x3(width) -> norm -> ReLU -> AvgPool2], Linear(width * (size/2^D)^2)."""
    stages, cin, size = [], channels, image_size
    for i in range(depth):
        stages.append((f"block{i + 1}", _conv_block(cin, width, norm, nn.AvgPool2d(2))))
        cin, size = width, size // 2
    return FeatureNet(stages, width * size * size, num_classes)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: Norm) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.n1 = norm_layer(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.n2 = norm_layer(norm, cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), norm_layer(norm, cout))

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.n1(self.conv1(x)))
        return torch.relu(self.n2(self.conv2(out)) + self.shortcut(x))


def resnet(channels: int, num_classes: int, image_size: int = 32, *, blocks: tuple[int, ...] = (2, 2, 2, 2),
           widths: tuple[int, ...] = (64, 128, 256, 512), norm: Norm = "instancenorm") -> FeatureNet:
    """CIFAR-style ResNet: 3x3 stride-1 stem, four stages of BasicBlocks, 4x4 average pool."""
    stem = nn.Sequential(nn.Conv2d(channels, widths[0], 3, 1, 1, bias=False), norm_layer(norm, widths[0]),
                         nn.ReLU(inplace=True))
    stages: list[tuple[str, nn.Module]] = [("stem", stem)]
    cin = widths[0]
    for i, (n, w) in enumerate(zip(blocks, widths, strict=True)):
        layers = [BasicBlock(cin if j == 0 else w, w, (1 if i == 0 else 2) if j == 0 else 1, norm) for j in range(n)]
        stages.append((f"block{i + 1}", nn.Sequential(*layers)))
        cin = w
    final = image_size // 8
    return FeatureNet(stages, widths[-1], num_classes, pool=nn.AvgPool2d(final))


class _DiMBlock(nn.Module):
    """DiM's BasicBlock (batch norm). ``avgpool_down``: DiM's ``resnet_ap`` (stride-1 convs, 2x2 average pool
    after the first conv and in the shortcut) instead of strided convs."""

    def __init__(self, cin: int, cout: int, stride: int, avgpool_down: bool) -> None:
        super().__init__()
        self.down = nn.AvgPool2d(stride) if avgpool_down and stride != 1 else nn.Identity()
        self.conv1 = nn.Conv2d(cin, cout, 3, 1 if avgpool_down else stride, 1, bias=False)
        self.n1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.n2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            if avgpool_down:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(stride),
                                              nn.BatchNorm2d(cout))
            else:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = self.down(torch.relu(self.n1(self.conv1(x))))
        return torch.relu(self.n2(self.conv2(out)) + self.shortcut(x))


def dim_resnet(channels: int, num_classes: int, image_size: int = 32, *, depth: int = 18,
               avgpool_down: bool = False) -> FeatureNet:
    """DiM's batch-norm ResNets (vimar-gu/DiM ``models/resnet.py``, ``models/resnet_ap.py``), the pool of its
    ``pool_match.py``. DiM picks the variant by dataset, and so does this builder, by channel count:

    - 3 channels (CIFAR): DiM's slim CIFAR ResNet, 3x3 stride-1 stem, widths 32-64-128-256,
      (depth - 2) // 6 blocks per stage (ResNet-10: 1, ResNet-18: 2);
    - 1 channel (MNIST, Fashion-MNIST): the ImageNet-style ResNet DiM builds for every non-CIFAR dataset,
      7x7 stem (stride 2 + 3x3 max-pool; ``_ap``: stride 1 + 4x4 average pool), widths 64-128-256-512,
      blocks [1,1,1,1] (ResNet-10) or [2,2,2,2] (ResNet-18).

    Global average pool, then a linear head; DiM's init (conv ~ N(0, sqrt(2 / (k*k*out))), BN weight 1, bias 0).
    """
    if channels == 3:
        widths, n = (32, 64, 128, 256), (depth - 2) // 6
        blocks = (n, n, n, n)
        stem = nn.Sequential(nn.Conv2d(channels, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True))
    else:
        widths, blocks = (64, 128, 256, 512), {10: (1, 1, 1, 1), 18: (2, 2, 2, 2)}[depth]
        layers: list[nn.Module] = [nn.Conv2d(channels, 64, 7, 1 if avgpool_down else 2, 3, bias=False),
                                   nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
        layers.append(nn.AvgPool2d(4, 4) if avgpool_down else nn.MaxPool2d(3, 2, 1))
        stem = nn.Sequential(*layers)
    stages: list[tuple[str, nn.Module]] = [("stem", stem)]
    cin = widths[0]
    for i, (nb, w) in enumerate(zip(blocks, widths, strict=True)):
        stride = 1 if i == 0 else 2
        stages.append((f"block{i + 1}", nn.Sequential(*[_DiMBlock(cin if j == 0 else w, w, stride if j == 0 else 1,
                                                                  avgpool_down) for j in range(nb)])))
        cin = w
    net = FeatureNet(stages, widths[-1], num_classes, pool=nn.AdaptiveAvgPool2d(1))
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, (2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)) ** 0.5)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return net


def alexnet(channels: int, num_classes: int, image_size: int = 32) -> FeatureNet:
    """The reference AlexNet (no norm): 5 convs with three max-pools, Linear(192 * 4 * 4)."""
    stages = [
        ("block1", nn.Sequential(nn.Conv2d(channels, 128, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2))),
        ("block2", nn.Sequential(nn.Conv2d(128, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2))),
        ("block3", nn.Sequential(nn.Conv2d(192, 256, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(256, 192, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(192, 192, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))),
    ]
    size = image_size // 8
    return FeatureNet(stages, 192 * size * size, num_classes)


VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def vgg11(channels: int, num_classes: int, image_size: int = 32, *, norm: Norm = "instancenorm") -> FeatureNet:
    """VGG-11 with instance norm (``vgg11-bn``: batch norm); one stage per max-pool, Linear(512)."""
    stages: list[tuple[str, nn.Module]] = []
    layers: list[nn.Module] = []
    cin = channels
    for v in VGG11:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
            stages.append((f"block{len(stages) + 1}", nn.Sequential(*layers)))
            layers = []
        else:
            layers += [nn.Conv2d(cin, int(v), 3, padding=1), norm_layer(norm, int(v)), nn.ReLU(inplace=True)]
            cin = int(v)
    size = image_size // 32
    return FeatureNet(stages, 512 * size * size, num_classes)


def _spec(name: str, fn: Callable[..., FeatureNet], description: str, **kw: object) -> NetworkSpec:
    def build(*, channels: int, num_classes: int, image_size: int = 32) -> FeatureNet:
        return fn(channels, num_classes, image_size, **kw)

    return NetworkSpec(name=name, build=build, description=description)


BUILTIN = [
    _spec("convnet3", convnet, "ConvNet-3, width 128, instance norm, avg-pool (the protocol's default)"),
    _spec("convnet3-bn", convnet, "ConvNet-3 with batch norm", norm="batchnorm"),
    _spec("resnet10", resnet, "ResNet-10 [1,1,1,1], widths 64-512, instance norm", blocks=(1, 1, 1, 1)),
    _spec("resnet18", resnet, "ResNet-18 [2,2,2,2], widths 64-512, instance norm"),
    _spec("resnet18-bn", resnet, "ResNet-18 with batch norm", norm="batchnorm"),
    _spec("dim-resnet10-bn", dim_resnet, "DiM's batch-norm ResNet-10 (its pool; CIFAR: slim, digits: ImageNet-style)",
          depth=10),
    _spec("dim-resnet18-bn", dim_resnet, "DiM's batch-norm ResNet-18 (its pool; CIFAR: slim, digits: ImageNet-style)",
          depth=18),
    _spec("dim-resnet10ap-bn", dim_resnet, "DiM's batch-norm ResNet-10-AP (average-pool downsampling)", depth=10,
          avgpool_down=True),
    _spec("dim-resnet18ap-bn", dim_resnet, "DiM's batch-norm ResNet-18-AP (average-pool downsampling)", depth=18,
          avgpool_down=True),
    _spec("alexnet", alexnet, "AlexNet as in the DC reference (no norm)"),
    _spec("vgg11", vgg11, "VGG-11 with instance norm"),
    _spec("vgg11-bn", vgg11, "VGG-11 with batch norm", norm="batchnorm"),
]


@hookimpl
def ddbench_register_networks(register: Callable[[NetworkSpec], None]) -> None:
    for spec in BUILTIN:
        register(spec)
