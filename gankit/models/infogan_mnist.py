"""InfoGAN's MNIST networks exactly as the paper gives them (Chen et al. 2016, appendix C.1, Table 1) and as its
code builds them (openai/InfoGAN, infogan/models/regularized_gan.py and infogan/misc/custom_ops.py):

* G: z (74 = 62 noise + 10 categorical + 2 continuous) -> FC 1024, BN, ReLU -> FC 7x7x128, BN, ReLU ->
  4x4 up-convolution 64, stride 2, BN, ReLU -> 4x4 up-convolution 1, stride 2 -> sigmoid (the code's
  MeanBernoulli output: pixels in [0, 1], handed on as 2 * sigmoid - 1; see layers.image_output).
* D: 4x4 conv 64, stride 2, LeakyReLU -> 4x4 conv 128, stride 2, BN, LeakyReLU -> FC 1024, BN, LeakyReLU
  -> FC 1 (the logit). D reads [0, 1] pixels, as the code's D does.
* Q (``q_head: true``): FC 128, BN, LeakyReLU -> FC to the codes' outputs, on D's FC 1024 features.

Settings from the code, which the paper does not state: LeakyReLU slope 0.01 (``leaky_rectify``); TF "SAME"
padding, which for these 4x4 stride-2 layers is PyTorch's padding 1 (28 -> 14 -> 7 and back); every layer keeps
its bias, also before a batch norm; conv weights truncated N(0, 0.02^2) (at 2 std, TF's truncated_normal),
FC and up-convolution weights N(0, 0.02^2), biases 0, batch-norm scale N(1, 0.02^2) and shift 0, batch-norm
eps 1e-5 and moving averages with decay 0.9 (PyTorch momentum 0.1).

Parameter counts (tests/test_infogan.py recomputes them from the layer sizes): G 6,652,481; D 6,559,169 (the
trunk and the logit); Q's head 133,004 for one 10-way and two continuous codes.

``batch_norm: false`` drops every batch norm of G, D and Q (the layers and their biases stay): the experiment of
the reference README (xyfJASON/GANs-Implementations), which found that without batch norm the categorical code
takes the digit more readily and the continuous codes do less.
"""
from __future__ import annotations

from typing import Annotated, Literal

from torch import Tensor, nn

from gankit.errors import ParamError
from gankit.models.conditional import DOutput, QHead, check_q_head, q_outputs
from gankit.models.layers import FP32ConvTranspose2d, FP32Linear, image_output, unit_pixels
from gankit.prior import CodeSpec
from gankit.registry import AT_LEAST_ONE, FRACTION, MODELS

Role = Literal["generator", "discriminator"]
SHAPE = (1, 28, 28)


def infogan_init(model: nn.Module) -> None:
    """The code's initialisers: conv weights truncated normal (std 0.02, cut at 2 std), FC and up-convolution
    weights normal (std 0.02), biases 0; batch-norm scale N(1, 0.02^2), shift 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.trunc_normal_(m.weight, 0.0, 0.02, -0.04, 0.04)
        elif isinstance(m, (nn.Linear, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)) and m.bias is not None:
            nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _none(features: int) -> nn.Module:
    """In place of a batch norm when batch_norm is false: the layer passes its input on."""
    return nn.Identity()


class InfoGANGenerator(nn.Module):
    """z [B, 74] -> images [B, 1, 28, 28] in [-1, 1] (a sigmoid image, see layers.image_output)."""

    def __init__(self, z_dim: int, width: int, fc_units: int, batch_norm: bool = True) -> None:
        super().__init__()
        self.data_shape, self.z_dim, self.uses_labels, self.channels = SHAPE, z_dim, False, 2 * width
        bn1, bn2 = (nn.BatchNorm1d, nn.BatchNorm2d) if batch_norm else (_none, _none)
        self.fc = nn.Sequential(nn.Linear(z_dim, fc_units), bn1(fc_units), nn.ReLU(),
                                nn.Linear(fc_units, 7 * 7 * 2 * width), bn1(7 * 7 * 2 * width), nn.ReLU())
        self.conv = nn.Sequential(nn.ConvTranspose2d(2 * width, width, 4, 2, 1), bn2(width), nn.ReLU(),
                                  FP32ConvTranspose2d(width, 1, 4, 2, 1))

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return image_output(self.conv(self.fc(z).reshape(z.shape[0], self.channels, 7, 7)), "sigmoid")


class InfoGANDiscriminator(nn.Module):
    """images [B, 1, 28, 28] in [-1, 1] (read as [0, 1] pixels) -> the logit [B], fp32; with Q attached, a
    DOutput whose heads hold Q's outputs and the FC 1024 features Q read."""

    def __init__(self, width: int, fc_units: int, leaky_slope: float, q_hidden: int, batch_norm: bool = True) -> None:
        super().__init__()
        self.data_shape, self.uses_labels = SHAPE, False
        act = lambda: nn.LeakyReLU(leaky_slope)  # noqa: E731
        bn1, bn2 = (nn.BatchNorm1d, nn.BatchNorm2d) if batch_norm else (_none, _none)
        self.trunk = nn.Sequential(nn.Conv2d(1, width, 4, 2, 1), act(),
                                   nn.Conv2d(width, 2 * width, 4, 2, 1), bn2(2 * width), act(),
                                   nn.Flatten(), nn.Linear(7 * 7 * 2 * width, fc_units), bn1(fc_units),
                                   act())
        self.logit = FP32Linear(fc_units, 1)
        self.fc_units, self.leaky_slope, self.q_hidden, self.q_head = fc_units, leaky_slope, q_hidden, None
        self.batch_norm = batch_norm

    def attach_q_head(self, codes: CodeSpec) -> None:
        """Q on D's FC features (requested with q_head: true), initialised like D."""
        head = QHead(self.fc_units, codes, self.q_hidden, leaky_slope=self.leaky_slope, hidden_bias=True,
                     batch_norm=self.batch_norm)
        infogan_init(head)
        self.q_head = head.to(self.logit.weight.device)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor | DOutput:
        h = self.trunk(unit_pixels(x))
        logit = self.logit(h).flatten()
        heads = q_outputs(self.q_head, h)
        return DOutput(logit, heads) if heads else logit


@MODELS.register("infogan_mnist", "InfoGAN's MNIST G, D and Q as the paper (Chen et al. 2016, appendix C.1)")
def infogan_mnist(
    role: Role,
    data_shape: tuple[int, ...],
    z_dim: int,
    n_classes: int = 0,
    *,
    width: Annotated[int, AT_LEAST_ONE] = 64,
    fc_units: Annotated[int, AT_LEAST_ONE] = 1024,
    leaky_slope: Annotated[float, FRACTION] = 0.01,
    q_head: bool = False,
    q_hidden: int = 128,
    batch_norm: bool = True,
) -> InfoGANGenerator | InfoGANDiscriminator:
    """The paper's networks for 28x28 grey images. width: the 14x14 map's channels (the 7x7 map has twice as
    many; the paper's 64); fc_units: the FC layer (the paper's 1024). Other values keep the paper's shape at
    another size (the tests' short runs). leaky_slope: D's and Q's LeakyReLU (0.01: the code's leaky_rectify).
    q_head: D only, Q on D's FC features; q_hidden: Q's hidden FC units (the paper's 128).
    batch_norm: false drops the batch norms (of G; of D's trunk and Q's hidden layer), keeping every other layer."""
    if n_classes:
        raise ParamError("name", "is infogan_mnist, which is unconditional (InfoGAN's codes come from model.codes)")
    if tuple(data_shape) != SHAPE:
        raise ParamError("name", f"is infogan_mnist, the paper's networks for 1x28x28 images; got data shape "
                                 f"{tuple(data_shape)}")
    check_q_head(role, q_head, q_hidden if q_head else 0)
    if role == "generator":
        model: nn.Module = InfoGANGenerator(z_dim, width, fc_units, batch_norm)
    else:
        if q_hidden < 1:
            raise ParamError("q_hidden", f"must be >= 1 (the paper's Q has an FC 128 layer), got {q_hidden}")
        model = InfoGANDiscriminator(width, fc_units, leaky_slope, q_hidden, batch_norm)
    infogan_init(model)
    return model
