import numpy as np

from minidl import plot


def test_every_plot_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    paths = [
        plot.training_curves({"train_loss": [2, 1.5, 1], "test_acc": [0.3, 0.5, 0.6]}, tmp_path / "c.png"),
        plot.image_grid(rng.random((5, 3, 8, 8)), tmp_path / "g.png", titles=list("abcde"), columns=3),
        plot.filters(rng.standard_normal((4, 3, 3, 3)), tmp_path / "f.png"),
        plot.confusion(np.array([[3, 1], [0, 4]]), ["x", "y"], tmp_path / "m.png"),
        plot.audio_panels(rng.standard_normal(800), 8000, {"log-mel": rng.random((20, 10))}, tmp_path / "a.png"),
        plot.lines({"norm": [1, 0.5, 0.25]}, tmp_path / "l.png", logy=True),
    ]
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
