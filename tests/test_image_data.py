"""Image data sources: digits, .npz, CIFAR python pickles (extracted and .tar.gz), checksums."""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.image.augment import augment_batch, random_crop
from workbench.image.data import CIFAR, DataError, download_cifar, load_image_data


def test_digits_splits_and_normalisation():
    d = load_image_data("digits", val_fraction=0.1, seed=0)
    assert d.in_channels == 1 and d.num_classes == 10 and d.image_size == (8, 8)
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 1797
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert abs(float(d.x_train.mean())) < 1e-3 and abs(float(d.x_train.std()) - 1) < 1e-2
    assert torch.bincount(d.y_val).min() >= 13  # stratified: every class in the val split
    again = load_image_data("digits", val_fraction=0.1, seed=0)
    other = load_image_data("digits", val_fraction=0.1, seed=1)
    assert torch.equal(d.x_val, again.x_val)
    assert not torch.equal(d.x_val, other.x_val)
    assert torch.equal(d.y_test, other.y_test), "the test split does not depend on the seed"
    small = load_image_data("digits", max_train=100)
    assert len(small.x_train) == 100 and torch.bincount(small.y_train).tolist() == [10] * 10


def test_npz_source_nhwc(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mini.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (40, 6, 6, 3), dtype=np.uint8),
        y_train=np.arange(40) % 4,
        x_test=rng.integers(0, 256, (8, 6, 6, 3), dtype=np.uint8),
        y_test=np.arange(8) % 4,
    )
    d = load_image_data(str(path), val_fraction=0.25)
    assert d.name == "mini" and d.num_classes == 4 and d.in_channels == 3
    assert d.x_train.shape == (30, 3, 6, 6) and d.x_val.shape == (10, 3, 6, 6)
    assert d.x_test.shape == (8, 3, 6, 6)
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((2, 4, 4)), y_train=np.zeros(2))
    with pytest.raises(DataError, match="missing arrays x_test, y_test"):
        load_image_data(str(tmp_path / "bad.npz"))


def test_real_cifar10_subset(shared_data):
    d = load_image_data(str(shared_data / "cifar10-subset" / "cifar10_subset.npz"))
    assert d.x_train.shape == (3600, 3, 32, 32) and d.x_val.shape == (400, 3, 32, 32)
    assert d.x_test.shape == (1000, 3, 32, 32) and d.num_classes == 10


def _write_cifar(root: Path, key: str, n: int = 20) -> dict[str, np.ndarray]:
    """A small archive in the official layout: pickled dicts of uint8 rows and label lists."""
    spec = CIFAR[key]
    folder = root / spec["folder"]
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    arrays = {}
    classes = 10 if key == "cifar10" else 100
    for name in spec["train"] + spec["test"]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, classes, n)]
        blob = {b"data": data, spec["label_key"]: labels, b"batch_label": name.encode()}
        (folder / name).write_bytes(pickle.dumps(blob))
        arrays[name] = data
    meta_name, meta_key = spec["meta"]
    names = [f"class{i}".encode() for i in range(classes)]
    (folder / meta_name).write_bytes(pickle.dumps({meta_key: names}))
    return arrays


@pytest.mark.parametrize("key", ["cifar10", "cifar100"])
def test_cifar_pickles_extracted_and_tar_gz(tmp_path, key):
    arrays = _write_cifar(tmp_path / "extracted", key)
    spec = CIFAR[key]
    d = load_image_data(str(tmp_path / "extracted"), val_fraction=0.0)
    n_train = 20 * len(spec["train"])
    assert d.x_train.shape == (n_train, 3, 32, 32) and d.x_test.shape == (20, 3, 32, 32)
    assert d.num_classes == (10 if key == "cifar10" else 100) and d.classes[1] == "class1"
    # rows are R plane, G plane, B plane of a 32×32 image: check one pixel through normalisation
    first = arrays[spec["test"][0]][0]
    red, green = first[0] / 255.0, first[1024 + 33] / 255.0
    assert d.x_test[0, 0, 0, 0] * d.std[0] + d.mean[0] == pytest.approx(red, abs=1e-5)
    assert d.x_test[0, 1, 1, 1] * d.std[1] + d.mean[1] == pytest.approx(green, abs=1e-5)

    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    with tarfile.open(archive_dir / spec["archive"], "w:gz") as tar:
        tar.add(tmp_path / "extracted" / spec["folder"], arcname=spec["folder"])
    from_tar = load_image_data(str(archive_dir), val_fraction=0.0)
    assert torch.equal(from_tar.x_test, d.x_test) and torch.equal(from_tar.y_train, d.y_train)


def test_cifar_pickle_that_runs_code_is_refused(tmp_path):
    _write_cifar(tmp_path, "cifar10", n=2)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(DataError, match="refusing to load"):
        load_image_data(str(tmp_path))


def test_cached_archive_with_a_wrong_checksum_is_an_error(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not the real archive")
    with pytest.raises(DataError, match="md5 checksum mismatch"):
        download_cifar("cifar10", cache_dir=tmp_path)


def test_missing_source_names_what_is_accepted(tmp_path):
    with pytest.raises(DataError, match="not found: give 'digits', 'cifar10'"):
        load_image_data(str(tmp_path / "nowhere.npz"))
    with pytest.raises(DataError, match="holds no CIFAR data"):
        load_image_data(str(tmp_path))


def test_augmentation_crops_and_flips_reproducibly():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6)
    out = random_crop(x, 2, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):  # every output image is some 6×6 window of its padded input
        windows = [
            torch.equal(out[i], padded[i, :, dy : dy + 6, dx : dx + 6])
            for dy in range(5)
            for dx in range(5)
        ]
        assert any(windows)
    a = augment_batch(x, torch.Generator().manual_seed(3), padding=2, flip=True)
    b = augment_batch(x, torch.Generator().manual_seed(3), padding=2, flip=True)
    assert torch.equal(a, b)
    flipped = augment_batch(x, torch.Generator().manual_seed(0), padding=0, flip=True)
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(2))


# --- download_cifar against a local HTTP server (issues 10.5 and 14) -----------------------------


class _Archive:
    """A served fake CIFAR-10 archive, with request counting, throttling and a cut-off."""

    def __init__(self, body: bytes):
        self.body = body
        self.requests: list[str | None] = []  # the Range header of each GET
        self.cut_first_after: int | None = None  # close the first response after this many bytes
        self.delay_s = 0.0  # sleep between chunks (to make concurrent downloads overlap)


@pytest.fixture
def archive_server(tmp_path):
    import http.server
    import threading
    import time

    body = os.urandom(300_000)
    state = _Archive(body)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            rng = self.headers.get("Range")
            state.requests.append(rng)
            start = int(rng.split("=")[1].rstrip("-")) if rng else 0
            data = state.body[start:]
            self.send_response(206 if rng else 200)
            self.send_header("Content-Length", str(len(data)))
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.end_headers()
            limit = state.cut_first_after if len(state.requests) == 1 else None
            for i in range(0, len(data), 10_000):
                if limit is not None and i >= limit:
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the network drops mid-download
                    return
                self.wfile.write(data[i : i + 10_000])
                time.sleep(state.delay_s)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/cifar-10-python.tar.gz"
    state.md5 = hashlib.md5(body).hexdigest()
    yield state
    server.shutdown()
    server.server_close()


def test_download_from_a_local_server(tmp_path, archive_server):
    s = archive_server
    path = download_cifar("cifar10", cache_dir=tmp_path, url=s.url, md5=s.md5)
    assert path == tmp_path / "cifar-10-python.tar.gz" and path.read_bytes() == s.body
    assert s.requests == [None] and not (tmp_path / "cifar-10-python.tar.gz.part").exists()
    download_cifar("cifar10", cache_dir=tmp_path, url=s.url, md5=s.md5)
    assert len(s.requests) == 1, "a verified archive is not downloaded again"


def test_an_interrupted_download_resumes_with_a_range_request(tmp_path, archive_server):
    s = archive_server
    s.cut_first_after = 120_000
    with pytest.raises(DataError, match="partial download resumes"):
        download_cifar("cifar10", cache_dir=tmp_path, url=s.url, md5=s.md5)
    part = tmp_path / "cifar-10-python.tar.gz.part"
    kept = part.stat().st_size
    assert 0 < kept < len(s.body), "the partial download is kept"
    path = download_cifar("cifar10", cache_dir=tmp_path, url=s.url, md5=s.md5)
    assert s.requests == [None, f"bytes={kept}-"]
    assert path.read_bytes() == s.body and not part.exists()


def test_a_bad_download_is_removed_and_reported(tmp_path, archive_server):
    s = archive_server
    with pytest.raises(DataError, match="fails its md5 check"):
        download_cifar("cifar10", cache_dir=tmp_path, url=s.url, md5="0" * 32)
    assert not (tmp_path / "cifar-10-python.tar.gz").exists()
    assert not (tmp_path / "cifar-10-python.tar.gz.part").exists()


@pytest.mark.slow
def test_two_processes_downloading_at_once_fetch_it_once(tmp_path, archive_server):
    import subprocess
    import sys
    import time

    s = archive_server
    s.delay_s = 0.02  # 30 chunks: about 0.6 s per download
    # Both processes import first, then start downloading at one signal, so the downloads
    # overlap however slowly the imports ran (without the lock both would then fetch).
    script = tmp_path / "fetch.py"
    script.write_text(
        "import sys, time\n"
        "from pathlib import Path\n"
        "from workbench.image.data import download_cifar\n"
        "cache, url, md5, ready, go = sys.argv[1:]\n"
        "Path(ready).touch()\n"
        "while not Path(go).exists():\n"
        "    time.sleep(0.005)\n"
        "print(download_cifar('cifar10', cache_dir=Path(cache), url=url, md5=md5))\n"
    )
    go = tmp_path / "go"
    ready = [tmp_path / f"ready{i}" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), s.url, s.md5, str(r), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in ready
    ]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert {o.strip() for o, _ in outs} == {str(tmp_path / "cifar-10-python.tar.gz")}
    assert s.requests == [None], "one process downloaded; the other waited and used its file"
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == s.body


def test_reflection_padding_mirrors_the_border():
    x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    out = random_crop(x, 2, g, padding_mode="reflect")
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    windows = [padded[0, :, dy : dy + 4, dx : dx + 4] for dy in range(5) for dx in range(5)]
    assert any(torch.equal(out[0], w) for w in windows)
    # the same offsets with zeros differ wherever the window reaches into the padding
    zeros = random_crop(x, 2, torch.Generator().manual_seed(0), padding_mode="zeros")
    offsets_hit_padding = not torch.equal(out, zeros)
    assert offsets_hit_padding and (zeros == 0).any() and not (out == 0).sum() > 1
    with pytest.raises(ValueError, match="padding_mode must be one of zeros, reflect"):
        random_crop(x, 2, g, padding_mode="edge")
