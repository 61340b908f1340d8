"""Stand-in of ``modules/safe.py``: A1111 1.10.1's restricted ``torch.load``, ported for the tests.

In the real webui, importing it replaces ``torch.load`` for the whole process (``modules/paths.py`` imports it
at start-up); here :func:`install` does that (``conditions.apply()`` calls it in ``webui.start()``).
:func:`load` checks the file with :class:`RestrictedUnpickler` and its zip entry-name list, reports a
refused file through ``errors.report`` ("Error verifying pickled file from …") and returns ``None``;
only a file that passes reaches :data:`unsafe_torch_load` (the original).
Its old entry-name list refuses the ``.format_version`` and ``.storage_alignment`` entries that
torch >= 2.1 writes, so most zip files saved since 2023 come back as ``None``.

The allow-lists, regular expressions and messages follow A1111 1.10.1; the ``pytorch_lightning``
entries are kept (they import only when a file names them). :func:`install`/:func:`uninstall` let the
harness undo the patch between tests (the real webui never does).
"""
from __future__ import annotations

import _codecs
import collections
import pickle
import re
import zipfile

import numpy
import torch

from modules import errors

TypedStorage = torch.storage.TypedStorage if hasattr(torch.storage, "TypedStorage") else torch.storage._TypedStorage


def encode(*args):
    return _codecs.encode(*args)


class RestrictedUnpickler(pickle.Unpickler):
    """Subclasses whatever ``pickle.Unpickler`` is when this module is imported (pure Python after
    pytorch_lightning's patch), as A1111's does."""

    extra_handler = None

    def persistent_load(self, saved_id):
        assert saved_id[0] == "storage"
        try:
            return TypedStorage(_internal=True)
        except TypeError:
            return TypedStorage()

    def find_class(self, module, name):
        if self.extra_handler is not None:
            res = self.extra_handler(module, name)
            if res is not None:
                return res
        if module == "collections" and name == "OrderedDict":
            return getattr(collections, name)
        if module == "torch._utils" and name in ["_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_device_tensor_from_numpy"]:
            return getattr(torch._utils, name)
        if module == "torch" and name in ["FloatStorage", "HalfStorage", "IntStorage", "LongStorage", "DoubleStorage",
                                          "ByteStorage", "float32", "BFloat16Storage"]:
            return getattr(torch, name)
        if module == "torch.nn.modules.container" and name in ["ParameterDict"]:
            return getattr(torch.nn.modules.container, name)
        if module == "numpy.core.multiarray" and name in ["scalar", "_reconstruct"]:
            return getattr(numpy.core.multiarray, name)
        if module == "numpy" and name in ["dtype", "ndarray"]:
            return getattr(numpy, name)
        if module == "_codecs" and name == "encode":
            return encode
        if module == "pytorch_lightning.callbacks" and name == "model_checkpoint":
            import pytorch_lightning.callbacks
            return pytorch_lightning.callbacks.model_checkpoint
        if module == "pytorch_lightning.callbacks.model_checkpoint" and name == "ModelCheckpoint":
            import pytorch_lightning.callbacks.model_checkpoint
            return pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint
        if module == "__builtin__" and name == "set":
            return set
        raise Exception(f"global '{module}/{name}' is forbidden")


allowed_zip_names_re = re.compile(r"^([^/]+)/((data/\d+)|version|byteorder|.data/serialization_id|(data\.pkl))$")
data_pkl_re = re.compile(r"^([^/]+)/data\.pkl$")


def check_zip_filenames(filename, names):
    for name in names:
        if allowed_zip_names_re.match(name):
            continue
        raise Exception(f"bad file inside {filename}: {name}")


def check_pt(filename, extra_handler):
    try:
        with zipfile.ZipFile(filename) as z:
            check_zip_filenames(filename, z.namelist())
            data_pkl_filenames = [f for f in z.namelist() if data_pkl_re.match(f)]
            if len(data_pkl_filenames) == 0:
                raise Exception(f"data.pkl not found in {filename}")
            if len(data_pkl_filenames) > 1:
                raise Exception(f"Multiple data.pkl found in {filename}")
            with z.open(data_pkl_filenames[0]) as file:
                unpickler = RestrictedUnpickler(file)
                unpickler.extra_handler = extra_handler
                unpickler.load()
    except zipfile.BadZipfile:
        with open(filename, "rb") as file:
            unpickler = RestrictedUnpickler(file)
            unpickler.extra_handler = extra_handler
            for _ in range(5):
                unpickler.load()


refused: list[str] = []
"""Files :func:`load` refused (returned None for), in order — for test assertions."""


def load(filename, *args, **kwargs):
    return load_with_extra(filename, *args, extra_handler=global_extra_handler, **kwargs)


def load_with_extra(filename, extra_handler=None, *args, **kwargs):
    from modules import shared

    try:
        if not shared.cmd_opts.disable_safe_unpickle:
            check_pt(filename, extra_handler)
    except pickle.UnpicklingError:
        refused.append(str(filename))
        errors.report(
            f"Error verifying pickled file from {filename}\n"
            "-----> !!!! The file is most likely corrupted !!!! <-----\n"
            "You can skip this check with --disable-safe-unpickle commandline argument, but that is not going to help you.\n\n",
            exc_info=True,
        )
        return None
    except Exception:
        refused.append(str(filename))
        errors.report(
            f"Error verifying pickled file from {filename}\n"
            f"The file may be malicious, so the program is not going to read it.\n"
            f"You can skip this check with --disable-safe-unpickle commandline argument.\n\n",
            exc_info=True,
        )
        return None
    return unsafe_torch_load(filename, *args, **kwargs)


class Extra:
    """``with safe.Extra(handler): torch.load(...)`` — a temporary global extra handler, as in A1111."""

    def __init__(self, handler):
        self.handler = handler

    def __enter__(self):
        global global_extra_handler
        assert global_extra_handler is None, "already inside an Extra() block"
        global_extra_handler = self.handler

    def __exit__(self, exc_type, exc_val, exc_tb):
        global global_extra_handler
        global_extra_handler = None


def install() -> None:
    """``torch.load = load`` (what importing the real module does)."""
    torch.load = load


def uninstall() -> None:
    """Put the original ``torch.load`` back (the harness's teardown; the real webui never does)."""
    torch.load = unsafe_torch_load


unsafe_torch_load = torch.load if not getattr(torch.load, "__module__", "").endswith("safe") else torch.serialization.load
global_extra_handler = None
# The real module ends with ``torch.load = load``.  Here ``conditions.apply()`` calls :func:`install`, so that
# merely importing this module (a test collecting ``from modules import safe``) changes nothing process-wide.
