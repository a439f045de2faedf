"""A local web page for the Dirac-GAN lab, with Gradio (optional extra: ``pip install 'gankit[ui]'``).

Gradio is imported lazily, inside ``build_app``; analytics and Hugging Face telemetry are switched off before the
import. The page binds to 127.0.0.1 unless another host is given.
"""
from __future__ import annotations

import math
import os
from typing import Any

from gankit.dirac import lab
from gankit.errors import GankitError

UI_MAX_STEPS = 20_000
_OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}
INITIAL_STATUS = "Choose a method and press **Run**."


def _import_gradio() -> Any:
    for key, value in _OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import gradio as gr
    except ImportError:
        raise GankitError("the Dirac page needs Gradio: pip install 'gankit[ui]'") from None
    return gr


def _as_int(value: Any, flag: str) -> int:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        raise GankitError(f"{flag} must be an integer, got {value}")
    if float(value) != int(float(value)):
        raise GankitError(f"{flag} must be an integer, got {value}")
    return int(float(value))


def _as_float(value: Any, flag: str) -> float:
    if value is None:
        raise GankitError(f"{flag} must be a number, got nothing")
    return float(value)


def simulate(loss: str, reg: str, weight: float | None, mode: str, n_d: Any, lr: Any, steps: Any, theta0: Any,
             psi0: Any) -> tuple[Any, str]:
    """The Run button: (figure as an RGB array, Markdown with eigenvalues and verdict); errors go in the Markdown."""
    from gankit.dirac import plots

    try:
        n_d_i = _as_int(n_d, "--n-d")
        steps_i = _as_int(steps, "--steps")
        lr_f = _as_float(lr, "--lr")
        start = (_as_float(theta0, "--start THETA"), _as_float(psi0, "--start PSI"))
        weight_f = None if weight is None else float(weight)
        lab.validate(loss=loss, reg=reg, mode=mode, weight=weight_f, n_d=n_d_i, lr=lr_f, steps=steps_i,
                     start=start)
        if steps_i > UI_MAX_STEPS:
            raise GankitError(f"--steps must be <= {UI_MAX_STEPS} on this page, got {steps_i}")
        result = lab.run_method(loss, reg, mode=mode, weight=weight_f, n_d=n_d_i, lr=lr_f, steps=steps_i,
                                start=start)
    except (GankitError, ValueError, TypeError) as exc:
        return None, f"**Error:** {exc}"
    image = plots.figure_rgb(plots.method_figure(result))
    ev = lab.format_eigenvalues(result.eigenvalues)
    note = ("" if result.differentiable else
            "\n\n*|dD/dx| penalty: the field is not differentiable at psi = 0; these are the eigenvalues of "
            "gankit's eps-smoothed norm.*")
    verdict = "converged" if result.converged else "not converged"
    text = (f"### {result.loss} + {result.reg} (weight {result.weight:g}), {result.mode}, n_d = {result.n_d}: "
            f"**{verdict}**\n\n"
            f"| final theta | final psi | distance | eigenvalues of J at (0, 0) | spectral radius |\n"
            f"|---|---|---|---|---|\n"
            f"| {result.theta:.4g} | {result.psi:.4g} | {result.distance:.3g} | {ev} | "
            f"{result.spectral_radius:.4g} |\n\n"
            f"Converged means: the distance to (0, 0) stays below {result.tol:g} over the last "
            f"{result.tail:.0%} of the {result.steps} steps.{note}")
    return image, text


def build_app() -> Any:
    """The Gradio Blocks page (not launched)."""
    gr = _import_gradio()
    d = lab.DEFAULTS
    with gr.Blocks(title="gankit: Dirac-GAN lab", analytics_enabled=False) as app:
        gr.Markdown("## gankit Dirac-GAN lab\nData = point mass at 0, G = delta(x - theta), D(x) = psi x "
                    "(Mescheder et al. 2018). Losses and regularizers are gankit's own.")
        with gr.Row():
            with gr.Column(scale=1):
                loss = gr.Dropdown(list(lab.LOSS_NAMES), value="gan", label="loss", elem_id="dirac-loss")
                reg = gr.Dropdown(list(lab.REG_NAMES), value="none", label="regularizer", elem_id="dirac-reg")
                weight = gr.Number(value=lab.DEFAULT_WEIGHTS["none"], label="weight (sigma for noise)",
                                   elem_id="dirac-weight")
                mode = gr.Radio(list(lab.MODES), value=d["mode"], label="update rule", elem_id="dirac-mode")
                with gr.Row():
                    n_d = gr.Number(value=d["n_d"], label="n_d", precision=0, elem_id="dirac-nd")
                    lr = gr.Number(value=d["lr"], label="learning rate h", elem_id="dirac-lr")
                    steps = gr.Number(value=d["steps"], label="steps", precision=0, elem_id="dirac-steps")
                with gr.Row():
                    theta0 = gr.Number(value=d["start"][0], label="start theta", elem_id="dirac-theta0")
                    psi0 = gr.Number(value=d["start"][1], label="start psi", elem_id="dirac-psi0")
                run_button = gr.Button("Run", variant="primary", elem_id="dirac-run")
            with gr.Column(scale=2):
                image = gr.Image(label="trajectory over the gradient vector field", type="numpy",
                                 elem_id="dirac-figure")
                status = gr.Markdown(INITIAL_STATUS, elem_id="dirac-status")
        reg.change(lambda r: lab.DEFAULT_WEIGHTS.get(r, 0.0), inputs=reg, outputs=weight)
        run_button.click(simulate, inputs=[loss, reg, weight, mode, n_d, lr, steps, theta0, psi0],
                         outputs=[image, status])
    return app


def launch(host: str = "127.0.0.1", port: int = 7860, *, block: bool = True) -> Any:
    """Serve the page on host:port and print its address; blocks until interrupted unless block=False."""
    app = build_app()
    url_host = f"[{host}]" if ":" in host else host
    print(f"gankit dirac: serving the Dirac-GAN lab on http://{url_host}:{port}/ (Ctrl+C to stop)", flush=True)
    try:
        app.launch(server_name=host, server_port=port, share=False, inbrowser=False, quiet=True,
                   prevent_thread_lock=not block, show_error=True)
    except OSError as exc:
        raise GankitError(f"--port {port}: cannot serve on {host}:{port} ({exc})") from None
    return app
