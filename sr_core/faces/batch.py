"""``sr-core batch``: every photo of a folder (or a manifest), each with its own model.

    sr-core batch photos/ --scale 2 --out photos-x2/            # this machine, one photo at a time
    sr-core batch photos/ --scale 2 --out photos-x2/ --workers 2
    sr-core batch list.txt --size 1024x768 --out big/ --engine ray [--address HOST:6379]

Each photo is fitted and upscaled on its own (`sr_core.Upscaler`, the same seed for every
photo), so a photo's result depends only on the photo and the settings: not on the engine,
the order or the worker that ran it. Workers compute; only the driver (this process) reads
the records and writes into --out, each file atomically: the output PNG and its resolved
config beside it, then the photo's record under ``.sr-batch/records/``. A rerun of the same
command skips photos whose output and record are complete; ``summary.json`` and
``summary.csv`` fold the records. See docs/batch.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import socket
import sys
import tempfile
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from sr_core.errors import UserError
from sr_core.faces.cli import _field_overrides, _float, add_config_options, parse_size

STATE_DIR = ".sr-batch"
JOB_FILE = "job.json"
SUMMARY_JSON = "summary.json"
SUMMARY_CSV = "summary.csv"
CONFIG_SUFFIX = ".config.json"
# Image files are recognised by their first bytes; a file with one of these extensions is
# taken as a photo even when its bytes are not an image, so a damaged one is reported.
MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
         b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"\x00\x00\x01\x00")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
                  ".pbm", ".pnm", ".ico", ".jp2", ".tga"}
MANIFEST_COLUMNS = ("path", "input", "file", "filename", "image")
WORKER_DIED = "the worker process died while on this photo (killed, or out of memory)"

# Called with each record once it is written (tests use it to interrupt a run).
_after_record: Callable[[dict], None] | None = None


# ------------------------------------------------------------------------- photos
@dataclass(frozen=True)
class Photo:
    """One input: `key` is its path relative to the input root (posix), `output` the
    output PNG's path relative to --out."""

    key: str
    path: Path
    output: str

    @property
    def config(self) -> str:
        return self.output[: -len(".png")] + CONFIG_SUFFIX

    @property
    def record(self) -> str:
        return f"{STATE_DIR}/records/{self.key}.json"


def is_image_file(path: Path) -> bool:
    """An image by its first bytes (PNG, JPEG, GIF, BMP, TIFF, PNM, ICO, WebP, JPEG 2000)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    if head[:12] in (b"\x00\x00\x00\x0cjP  \r\n\x87\n",) or head[:4] == b"\xff\x4f\xff\x51":
        return True
    return head.startswith(MAGIC)


def _walk(folder: Path, skip: Path | None) -> tuple[list[Path], int]:
    """Image files under `folder` (recursive, sorted, hidden names and `skip` left out), and
    how many other files were passed over."""
    found, ignored = [], 0
    for here, dirs, files in os.walk(folder):
        base = Path(here)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (skip is None or
                                                                       (base / d).resolve() != skip))
        for name in sorted(files):
            p = base / name
            if name.startswith(".") or not p.is_file():
                continue
            if is_image_file(p) or p.suffix.lower() in IMAGE_SUFFIXES:
                found.append(p)
            else:
                ignored += 1
    return found, ignored


def read_manifest(path: Path) -> list[Path]:
    """Paths listed in a text file (one a line; blank lines and # comments skipped) or a CSV
    (the column named path/input/file/filename/image, else the first); relative ones are
    relative to the manifest's folder."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path} is neither a folder, an image nor a text/CSV manifest of paths") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".csv":
        rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
        col = 0
        if rows:
            header = [c.strip().lower() for c in rows[0]]
            named = [header.index(c) for c in MANIFEST_COLUMNS if c in header]
            if named:
                col, rows = named[0], rows[1:]
        entries = [r[col].strip() for r in rows if len(r) > col and r[col].strip()]
    else:
        entries = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return [p if p.is_absolute() else path.parent / p for p in map(Path, entries)]


def discover(input_path: Path, out: Path) -> tuple[list[Photo], Path, int]:
    """The photos of INPUT (a folder, a manifest or one image), the root their keys are
    relative to, and how many non-image files a folder held."""
    if not input_path.exists():
        raise UserError(f"input not found: {input_path}")
    ignored = 0
    if input_path.is_dir():
        root = input_path.resolve()
        paths, ignored = _walk(input_path, out.resolve())
        paths = [p.resolve() for p in paths]
    elif is_image_file(input_path):
        paths = [input_path.resolve()]
        root = paths[0].parent
    else:
        paths = list(dict.fromkeys(p.resolve() for p in read_manifest(input_path)))
        root = Path(os.path.commonpath([p.parent for p in paths])) if paths else input_path.resolve().parent
    if not paths:
        raise UserError(f"no photos in {input_path}" + (f" ({ignored} files, none an image)" if ignored else ""))
    if root == out.resolve():
        raise UserError(f"--out {out} is where the photos are: outputs would replace them; choose another folder")
    paths = sorted(paths, key=lambda p: p.relative_to(root).as_posix())
    keys = [p.relative_to(root).as_posix() for p in paths]
    stems = [k[: -len(Path(k).suffix)] if Path(k).suffix else k for k in keys]
    clash = {s for s in stems if stems.count(s) > 1}
    # Photos that would share an output name (a.jpg, a.png) keep their extension in it.
    outputs = [(k if s in clash else s) + ".png" for k, s in zip(keys, stems)]
    return [Photo(k, p, o) for k, p, o in zip(keys, paths, outputs)], root, ignored


# ---------------------------------------------------------------------------- job
@dataclass(frozen=True)
class Job:
    """What every photo is given: picklable, the same on every worker."""

    preset: str
    scale: float | None = None
    size: tuple[int, int] | None = None
    overrides: dict = field(default_factory=dict)
    seed: int | None = None
    config_name: str | None = None  # --config FILE, read once by the driver
    config_text: str | None = None
    precision: str = "auto"
    device: str = "auto"
    threads: int = 1

    @property
    def target(self) -> dict[str, Any]:
        return {"scale": self.scale, "size": self.size}

    def settings(self) -> dict[str, Any]:
        """What the outputs depend on; a rerun into the same --out must match it."""
        return {"preset": self.preset, "scale": self.scale, "size": list(self.size) if self.size else None,
                "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(self.overrides.items())},
                "seed": self.seed, "precision": self.precision,
                "config": None if self.config_text is None else
                {"name": self.config_name, "sha1": hashlib.sha1(self.config_text.encode()).hexdigest()}}

    def fingerprint(self) -> str:
        return hashlib.sha1(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()[:16]


def process_photo(job: Job, key: str, source: str | bytes) -> dict[str, Any]:
    """Fit and upscale one photo (`source`: its path, or its bytes from a remote driver).

    Returns its record: status "done" with the output as PNG bytes (``png``) and the resolved
    config (``config``), or "failed" with a one-line ``error``. Writes nothing.
    """
    import torch

    from sr_core.runtime.io import decode_image, load_image
    from sr_core.upscaler import Upscaler

    started = time.time()
    t0 = time.perf_counter()
    record: dict[str, Any] = {"input": key, "host": socket.gethostname(), "started": round(started, 3)}
    threads = torch.get_num_threads()
    torch.set_num_threads(job.threads)
    try:
        with tempfile.TemporaryDirectory(prefix="sr-batch-") as tmp:
            config = None
            if job.config_text is not None:
                config = Path(tmp) / "config" / job.config_name
                config.parent.mkdir()
                config.write_text(job.config_text)
            image = decode_image(source, name=key) if isinstance(source, bytes) else load_image(source, name=key)
            up = Upscaler(job.preset, device=job.device, seed=job.seed, config=config, precision=job.precision,
                          **job.overrides)
            up.fit(image, progress=False, **job.target)
            train_seconds = time.perf_counter() - t0
            up.upscale(progress=False, **job.target)
            report = up.last
            png = report.png()
            record.update(status="done", input_size=list(image.size), output_size=list(report.size),
                          train_seconds=round(train_seconds, 3), upscale_seconds=round(report.seconds, 3),
                          device=str(up.device), png=png, config=up.config.to_json())
    except UserError as exc:
        record.update(status="failed", error=str(exc))
    except MemoryError:
        record.update(status="failed", error="out of memory")
    except Exception as exc:  # noqa: BLE001 - one photo's fault stays with that photo
        first = (str(exc).strip().splitlines() or [""])[0]
        record.update(status="failed", error=f"{type(exc).__name__}: {first}".rstrip(": "),
                      traceback=traceback.format_exc())
    finally:
        torch.set_num_threads(threads)
    record.update(seconds=round(time.perf_counter() - t0, 3), finished=round(time.time(), 3))
    return record


def _failed(photo: Photo, error: str) -> dict[str, Any]:
    now = round(time.time(), 3)
    return {"input": photo.key, "status": "failed", "error": error, "seconds": 0.0, "started": now, "finished": now}


# ------------------------------------------------------------------------ engines
def _worker_init(threads: int) -> None:
    """A pool worker: Ctrl-C is the driver's to handle; torch gets its share of the cores."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["OMP_NUM_THREADS"] = str(threads)


class _PoolDied(Exception):
    def __init__(self, photos: list[Photo]):
        super().__init__("a worker process died")
        self.photos = photos


def _run_pool(job: Job, queue: deque, workers: int) -> Iterator[tuple[Photo, dict]]:
    """Photos from `queue` on `workers` processes, `workers` at a time, as each finishes;
    raises _PoolDied (with the photos then in flight) if a worker process dies."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(job.threads,))
    running: dict = {}
    clean = False
    try:
        while queue or running:
            while queue and len(running) < workers:
                photo = queue.popleft()
                running[pool.submit(process_photo, job, photo.key, str(photo.path))] = photo
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    raise _PoolDied(list(running.values())) from None
                yield running.pop(fut), result
        clean = True
    finally:
        if not clean:  # interrupted, or a worker died: stop the others now, not after their photo
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def run_local(job: Job, photos: list[Photo], workers: int) -> Iterator[tuple[Photo, dict]]:
    """This machine: in this process for one worker, else `workers` processes. Photos that
    were running when a worker died are run again, each alone; one that kills its worker
    alone too is recorded as failed."""
    if workers == 1:
        for photo in photos:
            yield photo, process_photo(job, photo.key, str(photo.path))
        return
    queue = deque(photos)
    while queue:
        try:
            yield from _run_pool(job, queue, workers)
        except _PoolDied as died:
            for photo in died.photos:
                try:
                    yield from _run_pool(job, deque([photo]), 1)
                except _PoolDied:
                    yield photo, _failed(photo, WORKER_DIED)


def _start_ray(address: str | None, num_cpus: int) -> bool:
    """Connect to Ray, or start a local instance on 127.0.0.1 only; True if started here."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports leave the machine
    if address is None:
        # Ray binds its servers to the node's address; with the "cluster" mode off that is
        # the loopback address (its own choice on macOS and Windows).
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray
    except ImportError:
        raise UserError("--engine ray needs Ray: pip install 'sr_core[ray]'") from None
    if ray.is_initialized():
        return False
    import logging

    if address is None:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False  # where ray was imported before the variable was set
        ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", num_cpus=num_cpus,
                 logging_level=logging.WARNING)
    else:
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise UserError(f"cannot join the Ray cluster at {address}: {exc}") from None
    return True


def run_ray(job: Job, photos: list[Photo], *, address: str | None, workers: int,
            gpus: float) -> Iterator[tuple[Photo, dict]]:
    """Each photo one Ray task (num_cpus = --threads, num_gpus = --gpus-per-photo with a
    CUDA device), its bytes sent from here and its output returned here to be written.
    Ray retries a task whose worker died twice; then the photo is recorded as failed."""
    started = _start_ray(address, workers * job.threads)
    import ray

    try:
        task = ray.remote(num_cpus=job.threads, num_gpus=gpus, max_retries=2)(process_photo)
        capacity = max(1, int(ray.cluster_resources().get("CPU", 1) // job.threads))
        window = 2 * capacity  # queued tasks beyond this wait here, not in the object store
        queue, running = deque(photos), {}
        job_ref = ray.put(job)
        try:
            while queue or running:
                while queue and len(running) < window:
                    photo = queue.popleft()
                    try:
                        data = photo.path.read_bytes()
                    except OSError as exc:
                        yield photo, _failed(photo, f"cannot read {photo.key}: {exc.strerror or exc}")
                        continue
                    running[task.remote(job_ref, photo.key, data)] = photo
                if not running:
                    break
                done, _ = ray.wait(list(running), num_returns=1)
                for ref in done:
                    photo = running.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        result = _failed(photo, f"{WORKER_DIED}: {type(exc).__name__}")
                    yield photo, result
        finally:
            for ref in running:
                ray.cancel(ref, force=True)
    finally:
        if started:
            ray.shutdown()


# -------------------------------------------------------------------------- state
class BatchState:
    """--out: the outputs, the per-photo records and the summary."""

    def __init__(self, out: Path, job: Job):
        from sr_core.runtime.io import atomic_write_text

        self.out, self.job, self.fingerprint = out, job, job.fingerprint()
        job_file = out / STATE_DIR / JOB_FILE
        settings = job.settings()
        if job_file.exists():
            try:
                before = json.loads(job_file.read_text())["settings"]
            except (OSError, ValueError, KeyError, TypeError):
                before = None
            if before is not None and before != settings:
                changed = ", ".join(f"{k} {before.get(k)!r} -> {v!r}" for k, v in settings.items() if before.get(k) != v)
                raise UserError(f"--out {out} holds a batch made with other settings ({changed}); "
                                "use another --out folder")
        atomic_write_text(job_file, json.dumps({"settings": settings, "fingerprint": self.fingerprint}, indent=2))

    def read_record(self, photo: Photo) -> dict | None:
        try:
            record = json.loads((self.out / photo.record).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def complete(self, photo: Photo) -> dict | None:
        """The photo's record where its output and config are written and match it."""
        record = self.read_record(photo)
        if record is None or record.get("status") != "done" or record.get("job") != self.fingerprint:
            return None
        output = self.out / photo.output
        try:
            if output.stat().st_size != record.get("output_bytes") or not (self.out / photo.config).is_file():
                return None
        except OSError:
            return None
        return record

    def write(self, photo: Photo, result: dict) -> dict:
        """Output and config first, the record last: a record says its files are whole."""
        from sr_core.runtime.io import atomic_write_bytes, atomic_write_text

        record = {k: v for k, v in result.items() if k not in ("png", "config")}
        record["job"] = self.fingerprint
        if result.get("status") == "done":
            atomic_write_text(self.out / photo.config, result["config"])
            atomic_write_bytes(self.out / photo.output, result["png"])
            record.update(output=photo.output, output_bytes=len(result["png"]))
        atomic_write_text(self.out / photo.record, json.dumps(record, indent=2))
        return record

    def write_summary(self, photos: list[Photo], records: dict[str, dict], skipped: dict[str, dict],
                      extra: dict[str, Any]) -> dict:
        from sr_core.runtime.io import atomic_write_text

        rows = []
        for photo in photos:
            rec = records.get(photo.key) or skipped.get(photo.key)
            status = "skipped" if photo.key in skipped else (rec["status"] if rec else "pending")
            rec = rec or {}
            rows.append({"input": photo.key, "status": status, "seconds": rec.get("seconds"),
                         "output": rec.get("output"), "output_size": rec.get("output_size"),
                         "error": rec.get("error")})
        counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "skipped", "failed", "pending")}
        summary = {**extra, "settings": self.job.settings(), "counts": counts, "photos": rows}
        atomic_write_text(self.out / SUMMARY_JSON, json.dumps(summary, indent=2))
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["input", "status", "seconds", "output", "output_width", "output_height", "error"])
        for r in rows:
            w, h = r["output_size"] or ("", "")
            writer.writerow([r["input"], r["status"], "" if r["seconds"] is None else r["seconds"],
                             r["output"] or "", w, h, r["error"] or ""])
        atomic_write_text(self.out / SUMMARY_CSV, buf.getvalue())
        return summary


# ------------------------------------------------------------------------ command
def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _job(args: argparse.Namespace, threads: int) -> Job:
    from sr_core.upscaler import Upscaler

    overrides = _field_overrides(args)
    config_name = config_text = None
    if args.config is not None:
        try:
            config_text = Path(args.config).read_text()
        except OSError as exc:
            raise UserError(f"cannot read config file {args.config}: {exc.strerror or exc}") from None
        config_name = Path(args.config).name
    Upscaler(args.preset, device="cpu", seed=args.seed, config=args.config, **overrides)  # bad fields fail here
    return Job(args.preset, scale=args.scale, size=parse_size(args.size) if args.size else None,
               overrides=overrides, seed=args.seed, config_name=config_name, config_text=config_text,
               precision=args.precision, device=args.device, threads=threads)


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def cmd_batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.scale is not None and args.scale <= 0:
        raise UserError(f"--scale must be positive, got {args.scale:g}")
    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be 1 or more")
    if args.threads is not None and args.threads < 1:
        raise UserError("--threads must be 1 or more")
    if args.engine != "ray" and (args.address or args.gpus_per_photo is not None):
        raise UserError("--address and --gpus-per-photo go with --engine ray")
    cores = available_cores()
    if args.engine == "ray":
        threads = args.threads or 1
        workers = args.workers or max(1, cores // threads)
    else:
        workers = args.workers or 1
        threads = args.threads or max(1, cores // workers)
    job = _job(args, threads)
    out = Path(args.out)
    photos, root, ignored = discover(Path(args.input), out)
    state = BatchState(out, job)
    skipped = {p.key: r for p in photos if (r := state.complete(p)) is not None}
    todo = [p for p in photos if p.key not in skipped]
    where = (f"Ray at {args.address}" if args.address else f"local Ray, {workers} x {threads} CPU") \
        if args.engine == "ray" else f"{workers} worker{'s' * (workers > 1)} x {threads} thread{'s' * (threads > 1)}"
    print(f"sr-core batch: {len(photos)} photos under {root}" + (f" ({ignored} other files ignored)" if ignored else "")
          + f"; {len(skipped)} already done (skipped), {len(todo)} to do on {where}", file=sys.stderr)

    records: dict[str, dict] = {}
    failed: list[dict] = []
    interrupted = False
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), unit="photo", desc="batch", disable=args.quiet or not todo, file=sys.stderr,
               dynamic_ncols=True)
    try:
        if not todo:  # nothing to start an engine (or a Ray instance) for
            results = (x for x in ())
        elif args.engine == "ray":
            results = run_ray(job, todo, address=args.address, workers=workers,
                              gpus=(args.gpus_per_photo if args.gpus_per_photo is not None else 1.0)
                              if job.device.startswith("cuda") else 0.0)
        else:
            results = run_local(job, todo, workers)
        try:
            for photo, result in results:
                record = state.write(photo, result)
                records[photo.key] = record
                if record["status"] == "failed":
                    failed.append(record)
                    bar.write(f"failed: {photo.key}: {record['error']}", file=sys.stderr)
                bar.update(1)
                bar.set_postfix(failed=len(failed), refresh=False)
                if _after_record is not None:
                    _after_record(record)
        finally:
            results.close()  # stops the engine's workers at once where the loop ended early
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        seconds = time.perf_counter() - t0
        done = sum(r["status"] == "done" for r in records.values())
        extra = {"input": str(Path(args.input)), "root": str(root), "engine": args.engine,
                 "address": args.address, "workers": workers, "threads": threads, "device": job.device,
                 "seconds": round(seconds, 3),
                 "photos_per_hour": round(done / seconds * 3600, 2) if done and seconds > 0 else None,
                 "interrupted": interrupted}
        state.write_summary(photos, records, skipped, extra)
    print(f"done {done}, skipped {len(skipped)}, failed {len(failed)} of {len(photos)} photos in {_duration(seconds)}"
          f"; summary: {out / SUMMARY_JSON}")
    if interrupted:
        print(f"sr-core batch: interrupted; {done} photos finished this run are kept and nothing was half "
              "written: rerun the same command to go on", file=sys.stderr)
        return 130
    return 1 if failed else 0


RAY_OUTPUTS = ("Ray: every photo's bytes are sent from here and its output comes back here, where this process "
               "writes it into --out: the nodes need no shared folder, and one process alone writes the records "
               "that resume relies on.")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``sr-core batch`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "batch", help="upscale every photo of a folder or manifest, each with its own model (resumable)",
        description="Fit and upscale every photo of INPUT, each with its own model and the same seed. "
                    "A rerun of the same command skips the photos already done. Exit 0 when every photo "
                    "succeeded, 1 when some failed (the rest are written), 2 for a usage error. " + RAY_OUTPUTS)
    p.add_argument("input", help="a folder (searched recursively; image files recognised by their bytes), a text "
                                 "file of paths (one a line) or a CSV (a path/input/file column, else the first)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--scale", "-s", type=_float, help="one factor for both axes, e.g. 2 or 4")
    g.add_argument("--size", help="exact output size WxH for every photo, e.g. 1024x768")
    p.add_argument("--out", required=True, help="output folder: PHOTO.png and PHOTO.config.json mirroring INPUT's "
                                                "sub-folders, summary.json and summary.csv")
    p.add_argument("--workers", type=int, help="photos at once: processes on this machine (default 1), or the CPUs "
                                               "of a local Ray instance (default: cores // --threads)")
    p.add_argument("--threads", type=int, help="torch threads per photo (default: cores // --workers on this machine; "
                                               "1 with Ray, which is also the CPUs each Ray task asks for)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this machine; ray: one Ray task per photo (pip install 'sr_core[ray]')")
    p.add_argument("--address", help="with --engine ray: join this Ray cluster (e.g. HOST:6379 or auto) instead of "
                                     "starting a local instance on 127.0.0.1")
    p.add_argument("--gpus-per-photo", type=_float,
                   help="with --engine ray and a CUDA --device: the GPUs each task asks for (default 1; 0.25 "
                        "runs four photos per GPU)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default: auto)")
    p.add_argument("--seed", type=int, help="random seed, the same for every photo (default: the preset's)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="model arithmetic: auto = bf16 autocast on CUDA, fp32 elsewhere (default: auto)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_config_options(p)
    p.set_defaults(func=cmd_batch)
    return p


__all__ = ["Job", "Photo", "BatchState", "add_parser", "cmd_batch", "discover", "is_image_file", "process_photo",
           "read_manifest", "run_local", "run_ray"]
