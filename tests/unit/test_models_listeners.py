"""save_model tells registered listeners (e.g. the napari model lists) about new models, holds them weakly,
and never fails because a listener did."""

from napari_gama_ir import save_model
from napari_gama_ir.zoo.store import add_models_listener, remove_models_listener


class _Recorder:
    def __init__(self):
        self.paths = []

    def __call__(self, path):
        self.paths.append(path)

    def on_saved(self, path):
        self.paths.append(path)


def test_listeners_are_called_weakly_held_and_removable(tiny_model, user_models_dir):
    seen, gone = _Recorder(), _Recorder()
    add_models_listener(seen.on_saved)
    add_models_listener(seen.on_saved)  # registering twice calls once
    add_models_listener(gone.on_saved)
    del gone  # a listener whose owner is gone is dropped, not called
    path = save_model(tiny_model, "first")
    assert seen.paths == [path] and path.parent == user_models_dir
    remove_models_listener(seen.on_saved)
    save_model(tiny_model, "second")
    assert seen.paths == [path]


def test_a_failing_listener_does_not_fail_the_save(tiny_model, user_models_dir):
    def broken(_path):
        raise RuntimeError("widget already deleted")

    add_models_listener(broken)
    try:
        path = save_model(tiny_model, "saved-anyway")
    finally:
        remove_models_listener(broken)
    assert path.is_file() and path.with_suffix(".json").is_file()
