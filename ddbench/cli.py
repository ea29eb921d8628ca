"""The ``ddbench`` command line (click + rich). The only module that prints."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table as RichTable

from ddbench import config as cfgmod
from ddbench.errors import DDBenchError
from ddbench.overrides import EVAL_PREFIX, parse_overrides

console = Console(stderr=True)
out = Console(soft_wrap=True)


class RichProgress:
    """Implements :class:`ddbench.progress.Progress` with one shared rich display."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    @contextmanager
    def __call__(self, description: str, total: int | None) -> Iterator[Any]:
        task_id = self.progress.add_task(description, total=total, info="")
        progress = self.progress

        class _Task:
            def advance(self, n: int = 1, **fields: Any) -> None:
                info = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
                progress.update(task_id, advance=n, info=info)

        try:
            yield _Task()
        finally:
            progress.remove_task(task_id)


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console,
                    transient=False, disable=not console.is_terminal and not _force_progress())


def _force_progress() -> bool:
    import os

    return os.environ.get("DDBENCH_PROGRESS", "") == "1"


def _error(message: str) -> None:
    """The one-line error every bad input ends in (stderr)."""
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)  # e.g. 'ddbench[ray]' stays


class _Group(click.Group):
    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """click's standalone mode, except that usage errors (bad option values, unknown options or choices) are
        one line naming the value and where help is, instead of click's three-line usage block."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            where = f"; see '{exc.ctx.command_path} --help'" if exc.ctx is not None else ""
            _error(f"{exc.format_message().rstrip('.')}{where}")
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            _error(exc.format_message())
            sys.exit(exc.exit_code)
        except click.Abort:
            console.print("aborted", highlight=False)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DDBenchError as exc:
            _error(str(exc))
            ctx.exit(2)
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            # a path the user gave that cannot be read or written: one line naming it
            _error(f"{exc.filename or ''}: {exc.strerror or exc}; check the path and its permissions".lstrip(": "))
            ctx.exit(2)


@click.group(cls=_Group)
@click.option("-v", "--verbose", count=True, help="-v: info logs, -vv: debug logs")
@click.version_option(package_name="ddbench")
def main(verbose: int) -> None:
    """ddbench: dataset-distillation benchmark (methods are pluggy plugins)."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=console, show_path=False)],
                        force=True)


def _registries():  # type: ignore[no-untyped-def]
    from ddbench.plugins import registries

    return registries()


def _sweep_options(func: Any) -> Any:
    """Options shared by every command that runs cells (run, ablate)."""
    for opt in reversed((
        click.option("--arch", "archs", default="convnet3", show_default=True,
                     help="evaluation network(s), comma-separated (cross-architecture evaluation)"),
        click.option("-p", "--profile", default="quick", show_default=True, help="budget: smoke, quick or paper"),
        click.option("--seeds", default=None,
                     help="network seeds, comma-separated (default: 0..networks-1 of the profile)"),
        click.option("--paired-seeds", is_flag=True, help="distil one set per network seed (± spans sets × networks)"),
        click.option("--draws", type=int, default=1, show_default=True,
                     help="fixed sets per cell, each evaluated by every network (± spans draws × networks): "
                          "generative methods sample D sets from one generator, others distil with seeds 0..D-1"),
        click.option("--holdout", type=int, default=0, show_default=True,
                     help="tuning: hold out N training images as the evaluation set (the test split is not used)"),
        click.option("--out", type=click.Path(path_type=Path), default=Path("results"), show_default=True,
                     help="results folder (one JSON record per cell)"),
        click.option("--data-root", default=None,
                     help="dataset folder in torchvision's layout (default: $DDBENCH_DATA)"),
        click.option("--download/--no-download", default=True, show_default=True,
                     help="download missing data (online)"),
        click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
                     help="artifact cache (default: $DDBENCH_CACHE or ~/.cache/ddbench)"),
        click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)"),
        click.option("--rerun", is_flag=True, help="recompute cells that already have a record"),
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="torch CPU threads (default: torch's choice; 1 is faster when other jobs share the cores); "
                          "ray: CPUs per task, its torch threads (default 1)"),
        click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="local: cells run in this process; ray: cells run as Ray tasks (pip install 'ddbench[ray]')"),
        click.option("--address", default=None,
                     help="ray: join this Ray cluster (auto, ray://head:10001) instead of starting a local Ray"),
        click.option("--workers", type=click.IntRange(min=1), default=None,
                     help="ray, local Ray: tasks at once (default: CPU cores // threads)"),
        click.option("--retries", type=click.IntRange(min=0), default=None,
                     help="ray: extra tries of a task that failed or whose worker died (default 2)"),
    )):
        func = opt(func)
    return func


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _cell_name(c: Any) -> str:
    draw = f" draw{c.draw}" if getattr(c, "draw", 0) else ""
    return f"{c.method_label} {c.dataset} ipc{c.ipc} {c.arch} seed{c.seed}{draw}"


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _cell_reporter(bar: Progress, overall: Any, total: int) -> Any:
    """The callback that advances the overall bar and prints each newly measured cell with the count of cells
    done and an ETA (from the cells measured so far: logs of a non-terminal run show progress too)."""
    import time

    state = {"done": 0, "measured": 0, "start": time.perf_counter()}

    counts: dict[str, int] = {}
    announced: set[Any] = set()

    def done(outcome: Any) -> None:
        status = getattr(outcome, "status", "") or ("recorded" if outcome.record is None else "computed")
        name = _cell_name(outcome.cell)
        if status == "claimed":  # another sweep on this folder computes it: said once, not counted yet
            if outcome.cell not in announced:
                announced.add(outcome.cell)
                console.print(f"  {name}: being computed by {outcome.holder} (another sweep on this folder)",
                              highlight=False, markup=False)
            return
        counts[status] = counts.get(status, 0) + 1
        state["done"] += 1
        acc = {"recorded": "recorded", "other": "recorded by another sweep"}.get(
            status, f"{outcome.record['accuracy']:.2f}%" if outcome.record else "")
        info = f"{name}: {acc}"
        bar.update(overall, advance=1, info=info)
        if status == "computed":
            state["measured"] += 1
            rate = (time.perf_counter() - state["start"]) / state["measured"]
            eta = _duration(rate * (total - state["done"]))
            console.print(f"  [{state['done']}/{total}, eta {eta}] {info}", highlight=False, markup=False)
        elif status == "other":
            console.print(f"  [{state['done']}/{total}] {info}", highlight=False, markup=False)

    done.counts = counts  # type: ignore[attr-defined]
    return done


def _check_executor(executor: str, address: str | None, workers: int | None, retries: int | None) -> None:
    """Executor options that do not fit together; Ray missing (before anything is written)."""
    if executor == "local":
        given = [n for n, v in (("--address", address), ("--workers", workers), ("--retries", retries)) if v is not None]
        if given:
            raise DDBenchError(f"{given[0]} applies to the ray executor only; add --executor ray or drop {given[0]}")
        return
    if address is not None and workers is not None:
        raise DDBenchError("--workers sizes a local Ray; a cluster at --address has its own size: drop --workers")
    from ddbench.ray_executor import check_address, import_ray

    import_ray()
    if address is not None:
        check_address(address)


def _execute(plans: list[Any], bar: Progress, executor: str, address: str | None, workers: int | None,
             retries: int | None, threads: int | None) -> list[Any]:
    """Run the plans' cells with the chosen executor; returns the cells that failed (ray: the sweep goes on past
    them; local: the first error stops the sweep)."""
    import time

    total = sum(len(p.cells) for p in plans)
    overall = bar.add_task("cells", total=total, info="")
    done = _cell_reporter(bar, overall, total)
    if executor == "local":
        from ddbench.runner import execute

        for p in plans:
            execute(p, RichProgress(bar), done)
        console.print(_summary(done.counts), highlight=False)
        return []
    from ddbench.ray_executor import RayOptions, execute_ray, merge

    options = RayOptions(address=address, workers=workers, cpus_per_task=threads or 1,
                         retries=2 if retries is None else retries)
    t0 = time.perf_counter()

    def started() -> None:
        import ray

        cpus = int(ray.cluster_resources().get("CPU", 0))
        where = f"Ray cluster at {address}" if address else "local Ray"
        console.print(f"{where}: {cpus} CPUs, {options.cpus_per_task} per task, up in {time.perf_counter() - t0:.1f} s",
                      highlight=False)

    def failed(f: Any) -> None:
        bar.update(overall, advance=1, info=f"{_cell_name(f.cell)}: FAILED")
        console.print(f"  FAILED {_cell_name(f.cell)}: {f.error}", highlight=False, markup=False)

    _, failures = execute_ray(merge(plans), options, done, failed, started)
    console.print(_summary(done.counts), highlight=False)
    return failures


def _report_failures(failures: list[Any], ctx: click.Context) -> None:
    """Name every cell that kept failing (after the table of the others); exit 1."""
    if not failures:
        return
    console.print(f"{len(failures)} cell(s) failed (after retries); rerun the same command to retry them:",
                  highlight=False)
    for f in failures:
        console.print(f"  {_cell_name(f.cell)}: {f.error}", highlight=False, markup=False)
    ctx.exit(1)


def _to_compute(plans: list[Any]) -> str:
    """The run header's count: cells still to compute (a recorded cell is skipped), of all the plans' cells."""
    from ddbench.runner import cells_to_compute

    todo = [c for p in plans for c in cells_to_compute(p)]
    total = sum(len(p.cells) for p in plans)
    sets = len({(c.dataset, c.method_label, c.ipc, c.distill_seed) for c in todo})
    return (f"{len(todo)} of {total} cells to compute ({sets} distilled set{'' if sets == 1 else 's'}; "
            f"{total - len(todo)} already recorded)")


def _summary(counts: dict[str, int]) -> str:
    n = counts.get("computed", 0)
    parts = [f"{n} cell{'' if n == 1 else 's'} computed here"]
    if counts.get("other"):
        parts.append(f"{counts['other']} by another sweep on this folder")
    if counts.get("recorded"):
        parts.append(f"{counts['recorded']} already recorded")
    return ", ".join(parts)


def _remove_empty_tree(folder: Path) -> None:
    """Remove ``folder`` if it holds only empty folders: a run that failed leaves no empty --out behind."""
    if not folder.is_dir():
        return
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            sub.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


@contextmanager
def _no_empty_out(out_dir: Path) -> Iterator[None]:
    """A command that creates ``out_dir`` removes it again, if still empty, when it fails."""
    existed = out_dir.exists()
    try:
        yield
    except BaseException:
        if not existed:
            _remove_empty_tree(out_dir)
        raise


@main.command()
@click.option("-m", "--method", "methods", required=True, help="method name(s), comma-separated")
@click.option("-d", "--dataset", "datasets", default="mnist", show_default=True, help="dataset name(s), comma-separated")
@click.option("--ipc", default="1,10,50", show_default=True, help="images per class, comma-separated")
@click.option("-o", "--option", "overrides", multiple=True,
              help="override: key=value (all selected methods), METHOD.key=value, eval.key=value")
@_sweep_options
def run(methods: str, datasets: str, ipc: str, archs: str, profile: str, seeds: str | None, paired_seeds: bool,
        draws: int, holdout: int, overrides: tuple[str, ...], out: Path, data_root: str | None, download: bool,
        cache_dir: Path | None, device: str | None, rerun: bool, threads: int | None, executor: str,
        address: str | None, workers: int | None, retries: int | None) -> None:
    """Distil and evaluate every (dataset, method, IPC, arch, seed) cell; finished cells are skipped."""
    from ddbench.runner import Request, parse_ipcs, parse_list, plan
    from ddbench.tables import build_table, load_frame

    _check_executor(executor, address, workers, retries)
    seed_list = None
    if seeds is not None:
        try:
            seed_list = [int(s) for s in parse_list(seeds, "seeds")]
        except ValueError:
            raise DDBenchError(f"bad --seeds {seeds!r}: give integers, e.g. --seeds 0,1,2,3,4") from None
    req = Request(methods=parse_list(methods, "method"), datasets=parse_list(datasets, "dataset"),
                  ipcs=parse_ipcs(ipc), archs=parse_list(archs, "arch"), profile=profile, seeds=seed_list,
                  paired_seeds=paired_seeds, draws=draws, holdout=holdout, overrides=list(overrides), out=out,
                  data_root=data_root, download=download, cache_dir=cache_dir, device=device, rerun=rerun)
    _set_threads(1 if threads is None and executor == "ray" else threads)  # ray tasks run 1 thread by default
    with _no_empty_out(out):
        the_plan = plan(_registries(), req)
        cells = the_plan.cells
        console.print(f"{_to_compute([the_plan])}, profile {profile}, results in {out}", highlight=False)
        with _progress() as bar:
            failures = _execute([the_plan], bar, executor, address, workers, retries, threads)
    frame = load_frame(out)
    keep = {p for p in (str(c.path(out)) for c in cells)}
    frame = frame[frame["path"].isin(keep)]
    for arch in dict.fromkeys(c.arch for c in cells):
        _print_table(build_table(frame, "datasets", arch=arch), "rich")
    _report_failures(failures, click.get_current_context())


@main.command()
@click.option("--from", "source", type=click.Path(path_type=Path), required=True,
              help="the distilled set: ddbench sample's distilled.pt, an (images, labels) pair of tensors in the "
                   "reference's normalised space (28x28 digits are padded to 32), or the reference's res_*.pt")
@click.option("-d", "--dataset", default=None, help="its dataset (default: the name a ddbench export carries)")
@click.option("--name", default=None, help="the row name (default: the file's stem); records go to from-file+name=NAME")
@click.option("--entry", type=click.IntRange(min=0), default=0, show_default=True,
              help="a reference res_*.pt holds one set per experiment: which one")
@click.option("-o", "--option", "overrides", multiple=True, help="evaluation override eval.key=value (as in run)")
@_sweep_options
def evaluate(source: Path, dataset: str | None, name: str | None, entry: int, overrides: tuple[str, ...], archs: str,
             profile: str, seeds: str | None, paired_seeds: bool, out: Path, data_root: str | None, download: bool,
             cache_dir: Path | None, device: str | None, rerun: bool, threads: int | None, executor: str,
             address: str | None, workers: int | None, retries: int | None, draws: int = 1, holdout: int = 0) -> None:
    """Evaluate a distilled set made elsewhere under ddbench's protocol: ordinary records, one per (arch, seed)."""
    from ddbench.fromfile import METHOD, check_name, default_name, plugin_for, read_set
    from ddbench.plugins import registries
    from ddbench.runner import Request, execute, parse_list, plan
    from ddbench.tables import build_table, load_frame

    if paired_seeds:
        raise DDBenchError("--paired-seeds distils one set per seed; a file holds one set: drop --paired-seeds")
    if draws != 1 or holdout:
        raise DDBenchError("--draws and --holdout concern distillation; a file holds one set: drop them")
    if executor != "local":  # Ray workers build their own registries, without this file's set
        raise DDBenchError("evaluate runs its cells in this process: drop --executor ray")
    bad = [o for o in overrides if not o.strip().startswith(EVAL_PREFIX)]
    if bad:
        raise DDBenchError(f"bad -o {bad[0]!r}: evaluate takes evaluation options only, e.g. -o eval.augment=dc")
    loaded = read_set(source, _registries().datasets, dataset, entry)
    row = check_name(name) if name is not None else default_name(source)
    req = Request(methods=[METHOD], datasets=[loaded.dataset], ipcs=[loaded.ipc], archs=parse_list(archs, "arch"),
                  profile=profile, seeds=_seed_list(seeds), overrides=[f"name={row}", *overrides], out=out,
                  data_root=data_root, download=download, cache_dir=cache_dir, device=device, rerun=rerun)
    _set_threads(threads)
    the_plan = plan(registries(extra=[plugin_for(loaded)]), req)
    cells = the_plan.cells
    console.print(f"{source}: {len(loaded.labels)} images ({loaded.ipc} per class, {loaded.size}x{loaded.size}, "
                  f"{loaded.source}) of {loaded.dataset}; {len(cells)} cells, profile {profile}, results in {out}")
    with _progress() as bar:
        overall = bar.add_task("cells", total=len(cells), info="")
        execute(the_plan, RichProgress(bar), _cell_reporter(bar, overall, len(cells)))
    frame = load_frame(out)
    frame = frame[frame["path"].isin({str(c.path(out)) for c in cells})]
    for arch in dict.fromkeys(c.arch for c in cells):
        _print_table(build_table(frame, "datasets", arch=arch), "rich")


def _print_table(table: Any, fmt: str, output: Path | None = None) -> None:
    from ddbench.tables import FORMATS, check_choice

    check_choice(fmt, FORMATS, "table format")
    if fmt == "rich" and output is None:
        out.print(table.to_rich(styled=out.is_terminal and out.color_system is not None))
        return
    text = table.render(fmt)
    if output is not None:
        output.write_text(text)
        console.print(f"wrote {output}")
    else:
        click.echo(text, nl=False)


def _check_out_file(path: Path | None) -> None:
    """An output file's path must name a file in an existing (or creatable) folder: checked before any work."""
    if path is None:
        return
    if path.is_dir():
        raise DDBenchError(f"--out {path} is a folder; give a file name, e.g. --out {path / 'out.txt'}")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise DDBenchError(f"--out {path}: {parent} is a file, not a folder; choose another path")


def _results_dir(results: Path) -> Path:
    if not results.is_dir():
        raise DDBenchError(f"results folder {results} does not exist; pass the --out folder of `ddbench run`")
    return results


@main.command()
@click.option("--results", type=click.Path(path_type=Path), default=Path("results"), show_default=True)
@click.option("--layout", default="datasets", show_default=True,
              help="datasets: methods x dataset/IPC (Table 1); archs: methods x architecture (Table 2); "
                   "ablation: the values of --key x dataset/IPC")
@click.option("--format", "fmt", default="rich", show_default=True, help="rich, markdown, latex (booktabs), csv or html")
@click.option("--arch", default=None,
              help="datasets layout: the architecture (default convnet3); archs layout: the columns, comma-separated "
                   "(default: those recorded); ablation: filter")
@click.option("-d", "--dataset", default=None, help="dataset for the archs layout; ablation: filter")
@click.option("--ipc", type=int, default=None, help="IPC for the archs layout; ablation: filter")
@click.option("-m", "--method", default=None, help="only this method (NAME or NAME+variant); ablation: the method")
@click.option("--key", default=None, help="ablation layout: the -o option whose values are the rows (e.g. w_l)")
@click.option("--improvement", is_flag=True, help="add Δ = mean minus the random row's mean (same column, protocol)")
@click.option("--reference", default=None,
              help="add published numbers in their own '(paper)' rows: paper = Li et al., Table 1 / Table 2")
@click.option("--reference-rows", default="measured", show_default=True,
              help="measured: published rows for the measured methods; all: every published method")
@click.option("--metric", default="accuracy", show_default=True,
              help="accuracy; distill-seconds or evaluate-seconds: the wall times the records carry")
@click.option("--out", "output", type=click.Path(path_type=Path), default=None, help="write to a file instead of stdout")
@click.option("--output", "output", type=click.Path(path_type=Path), default=None, hidden=True)  # the old name
@click.option("--strict", is_flag=True, help="an unreadable record file is an error (default: named, counted, left out)")
def table(results: Path, layout: str, fmt: str, arch: str | None, dataset: str | None, ipc: int | None,
          method: str | None, key: str | None, improvement: bool, reference: str | None, reference_rows: str,
          metric: str, output: Path | None, strict: bool) -> None:
    """Rebuild a table (mean ± std, n; best per column in bold) from the records under RESULTS."""
    from ddbench.tables import FORMATS, build_table, check_choice, load_frame

    check_choice(fmt, FORMATS, "table format")
    _check_out_file(output)
    t = build_table(load_frame(_results_dir(results), strict=strict), layout, arch=arch, dataset=dataset, ipc=ipc,
                    improvement=improvement, reference=reference, reference_rows=reference_rows, key=key,
                    method=method, metric=metric)
    _print_table(t, fmt, output)


def _seed_list(seeds: str | None) -> list[int] | None:
    from ddbench.runner import parse_list

    if seeds is None:
        return None
    try:
        return [int(s) for s in parse_list(seeds, "seeds")]
    except ValueError:
        raise DDBenchError(f"bad --seeds {seeds!r}: give integers, e.g. --seeds 0,1,2,3,4") from None


@main.command()
@click.option("-m", "--method", required=True, help="the method whose option varies (one name)")
@click.option("-d", "--dataset", "datasets", default="mnist", show_default=True, help="dataset name(s), comma-separated")
@click.option("--ipc", default="10", show_default=True, help="images per class, comma-separated")
@click.option("--key", required=True, help="the option to vary, as after -o: KEY, METHOD.KEY or eval.KEY")
@click.option("--values", required=True, help="its values, comma-separated (';'-separated if a value has commas)")
@click.option("-o", "--option", "overrides", multiple=True, help="fixed overrides for every value (as in run)")
@_sweep_options
@click.option("--format", "fmt", default="rich", show_default=True, help="table format: rich, markdown, latex, csv, html")
@click.option("--figure", "figure_path", type=click.Path(path_type=Path), default=None,
              help="also write accuracy vs value (mean ± std) as a PNG")
def ablate(method: str, datasets: str, ipc: str, key: str, values: str, archs: str, profile: str, seeds: str | None,
           paired_seeds: bool, draws: int, holdout: int, overrides: tuple[str, ...], out: Path, data_root: str | None,
           download: bool, cache_dir: Path | None, device: str | None, rerun: bool, threads: int | None, executor: str,
           address: str | None, workers: int | None, retries: int | None, fmt: str, figure_path: Path | None) -> None:
    """Sweep one -o option over VALUES (one variant per value; resumable like run), then print the ablation."""
    from ddbench.runner import Request, parse_ipcs, parse_list, plan
    from ddbench.tables import FORMATS, ablation_frame, ablation_summary, build_ablation_table, check_choice, load_frame

    check_choice(fmt, FORMATS, "table format")
    _check_executor(executor, address, workers, retries)
    methods = parse_list(method, "method")
    if len(methods) != 1:
        raise DDBenchError(f"ablate varies one method's option; got {len(methods)} methods ({method}): give one --method")
    key = key.strip()
    if not key or "=" in key:
        raise DDBenchError(f"bad --key {key!r}: give an option name, e.g. --key w_l or --key eval.epochs")
    value_list = parse_list(values.split(";") if ";" in values else values, "values")
    fixed = parse_overrides(overrides)
    if key in fixed:
        raise DDBenchError(f"--key {key} is also fixed with -o {key}={fixed[key]}: drop one of them")
    base = dict(methods=methods, datasets=parse_list(datasets, "dataset"), ipcs=parse_ipcs(ipc),
                archs=parse_list(archs, "arch"), profile=profile, seeds=_seed_list(seeds), paired_seeds=paired_seeds,
                draws=draws, holdout=holdout, out=out, data_root=data_root, download=download, cache_dir=cache_dir,
                device=device, rerun=rerun)
    _set_threads(1 if threads is None and executor == "ray" else threads)  # ray tasks run 1 thread by default
    regs = _registries()
    with _no_empty_out(out):
        plans = [plan(regs, Request(**base, overrides=[*overrides, f"{key}={v}"])) for v in value_list]  # all checked first
        cells = [c for p in plans for c in p.cells]
        console.print(f"{len(value_list)} values of {key}: {_to_compute(plans)}, profile {profile}, results in {out}",
                      highlight=False)
        with _progress() as bar:
            failures = _execute(plans, bar, executor, address, workers, retries, threads)
    frame = load_frame(out)
    frame = frame[frame["path"].isin({str(c.path(out)) for c in cells})]
    _print_table(build_ablation_table(frame, key, method=methods[0]), fmt)
    if figure_path is not None:
        from ddbench.figures import ablation_png, write_png

        t = build_ablation_table(frame, key, method=methods[0])
        write_png(ablation_png(ablation_summary(ablation_frame(frame, key, method=methods[0])), key, t.title), figure_path)
        console.print(f"wrote {figure_path}")
    _report_failures(failures, click.get_current_context())


@main.group()
def figure() -> None:
    """PNG figures: distilled images per class (grid), accuracy vs an option (ablation)."""


@figure.command()
@click.option("--from", "source", type=click.Path(path_type=Path), default=None,
              help="ddbench sample's distilled.pt, or an (images, labels) pair of tensors (give its -d)")
@click.option("-m", "--method", default=None, help="instead of --from: make the set now through `ddbench sample`")
@click.option("-d", "--dataset", default=None, help="with --method (default mnist); with --from: if the file names none")
@click.option("--ipc", type=int, default=None, help="with --method: images per class")
@click.option("-p", "--profile", default="quick", show_default=True, help="with --method: budget")
@click.option("-o", "--option", "overrides", multiple=True, help="with --method: method override key=value")
@click.option("--seed", type=int, default=0, show_default=True, help="with --method: distillation / sampling seed")
@click.option("--fit", is_flag=True, help="with --method: train a generative method's generator if not cached")
@click.option("--data-root", default=None)
@click.option("--download/--no-download", default=True)
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None)
@click.option("--device", default=None)
@click.option("--keep", type=click.Path(path_type=Path), default=None,
              help="with --method: keep sample's distilled.pt and grid.png in this folder (default: temporary)")
@click.option("--max-per-class", type=int, default=None, help="draw at most this many images of each class")
@click.option("--title", default=None, help="title above the grid")
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True, help="PNG file to write")
@click.pass_context
def grid(ctx: click.Context, source: Path | None, method: str | None, dataset: str | None, ipc: int | None,
         profile: str, overrides: tuple[str, ...], seed: int, fit: bool, data_root: str | None, download: bool,
         cache_dir: Path | None, device: str | None, keep: Path | None, max_per_class: int | None, title: str | None,
         out_path: Path) -> None:
    """Distilled images as a PNG grid: one row per class, labelled with the class name."""
    import importlib.util
    import tempfile

    from ddbench.figures import grid_png, read_distilled, write_png

    if (source is None) == (method is None):
        raise DDBenchError("give either --from FILE (a distilled.pt) or --method NAME --ipc K, not both or neither")
    _check_out_file(out_path)
    if max_per_class is not None and max_per_class < 1:
        raise DDBenchError(f"bad --max-per-class {max_per_class}: give a positive integer")
    regs = _registries()
    with tempfile.TemporaryDirectory(prefix="ddbench-grid-") as tmp:
        if method is not None:
            if ipc is None:
                raise DDBenchError("--method needs --ipc (images per class to draw)")
            if importlib.util.find_spec("ddbench.export") is None:
                raise DDBenchError("`ddbench sample` needs ddbench.export, which is not installed yet; use --from FILE")
            folder = keep or Path(tmp)
            dataset = dataset or "mnist"
            ctx.invoke(sample, method=method, dataset=dataset, ipc=ipc, out_dir=folder, profile=profile,
                       overrides=overrides, seed=seed, fit=fit, data_root=data_root, download=download,
                       cache_dir=cache_dir, device=device)
            source = folder / "distilled.pt"
            title = title or f"{method} on {dataset}, IPC {ipc} (profile {profile}, seed {seed})"
        assert source is not None
        d = read_distilled(source, regs.datasets, dataset)
        title = title or f"{source.name}: {d.dataset}"
        write_png(grid_png(d.pixels, d.labels, d.class_names, title=title, max_per_class=max_per_class), out_path)
    console.print(f"wrote {out_path} ({len(d.labels)} images, {len(set(d.labels.tolist()))} classes)")


@figure.command(name="ablation")
@click.option("--results", type=click.Path(path_type=Path), default=Path("results"), show_default=True)
@click.option("--key", required=True, help="the option on the x axis, as after -o (e.g. w_l, eval.epochs)")
@click.option("-m", "--method", default=None, help="the method (needed when several have the option)")
@click.option("-d", "--dataset", default=None, help="only this dataset")
@click.option("--ipc", type=int, default=None, help="only this IPC")
@click.option("--arch", default=None, help="only this architecture")
@click.option("--size", default="800x500", show_default=True, help="WIDTHxHEIGHT in pixels")
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True, help="PNG file to write")
@click.option("--strict", is_flag=True, help="an unreadable record file is an error (default: named and left out)")
def ablation(results: Path, key: str, method: str | None, dataset: str | None, ipc: int | None, arch: str | None,
             size: str, out_path: Path, strict: bool) -> None:
    """Accuracy (mean ± sample std, error bars) vs the values of one option, from the records under RESULTS."""
    from ddbench.figures import ablation_png, write_png
    from ddbench.tables import ablation_frame, ablation_summary, build_ablation_table, load_frame

    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise DDBenchError(f"bad --size {size!r}: write WIDTHxHEIGHT, e.g. --size 800x500") from None
    if min(width, height) < 100:
        raise DDBenchError(f"bad --size {size!r}: at least 100x100 pixels")
    _check_out_file(out_path)
    df = load_frame(_results_dir(results), strict=strict)
    frame = ablation_frame(df, key, method, dataset, ipc, arch)
    t = build_ablation_table(df, key, method, dataset, ipc, arch)
    write_png(ablation_png(ablation_summary(frame), key, t.title, size=(width, height)), out_path)
    console.print(f"wrote {out_path}")


@main.command()
@click.option("--results", type=click.Path(path_type=Path), default=Path("results"), show_default=True)
@click.option("--out", "out_path", type=click.Path(path_type=Path), default=Path("report.html"), show_default=True)
@click.option("--reference", default=None, help="add published numbers in '(paper)' rows: paper")
@click.option("--improvement", is_flag=True, help="add Δ over the random row to every table")
@click.option("--grid", "grids", multiple=True, type=click.Path(path_type=Path),
              help="extra distilled.pt files to show (those under RESULTS are found by themselves)")
@click.option("--title", default=None, help="page title")
@click.option("--strict", is_flag=True, help="an unreadable record file is an error (default: named, counted, left out)")
def report(results: Path, out_path: Path, reference: str | None, improvement: bool, grids: tuple[Path, ...],
           title: str | None, strict: bool) -> None:
    """One self-contained HTML page (tables, figures as embedded PNG) for a results folder."""
    from ddbench.report import build_report

    _check_out_file(out_path)
    page = build_report(_results_dir(results), reference=reference, improvement=improvement, grids=grids,
                        datasets=_registries().datasets, title=title, strict=strict)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(page, encoding="utf-8")
    console.print(f"wrote {out_path} ({len(page) // 1024} KiB)")


@main.command(name="list")
@click.argument("kind", required=False, metavar="[KIND]",
                type=click.Choice(["methods", "datasets", "networks", "evaluators", "profiles"]))
@click.option("--options", "show_options", is_flag=True, help="also list each method's -o options")
def list_(kind: str | None, show_options: bool) -> None:
    """List methods, datasets, networks, evaluators and profiles, with the plugin that gave each."""
    from ddbench.profiles import PROFILES

    regs = _registries()
    kinds = [kind] if kind else ["methods", "datasets", "networks", "evaluators", "profiles"]
    for k in kinds:
        rt = RichTable(title=k)
        rt.add_column("name", style="bold")
        if k == "profiles":
            rt.add_column("networks", justify="right")
            rt.add_column("description")
            for p in PROFILES.values():
                rt.add_row(p.name, str(p.networks), p.description)
            out.print(rt)
            continue
        entries = getattr(regs, k).entries()
        rt.add_column("plugin")
        rt.add_column("description")
        for e in entries:
            rt.add_row(e.name, e.plugin, getattr(e.obj, "description", ""))
        out.print(rt)
        if k == "methods" and show_options:
            for e in entries:
                out.print(_options_table(e.name, e.obj.Config, getattr(e.obj, "profiles", None) or {}))
                for line in getattr(e.obj, "deviations", ()):
                    out.print(f"  differs from the published code: {line}", highlight=False)
            from ddbench.evaluation import StandardEvaluator

            out.print(_options_table("eval (standard evaluator, -o eval.key=value)", StandardEvaluator.Config,
                                     StandardEvaluator.profiles))


def _options_table(name: str, config: type, profiles: dict[str, dict[str, Any]]) -> RichTable:
    """One row per option: type (a Literal lists its choices), the value under each profile, help."""
    from ddbench.profiles import PROFILES

    names = [p for p in PROFILES if p != "paper"]
    rt = RichTable(title=f"{name} options (-o key=value; a profile's value where it differs from the paper default)")
    for col in ("option", "type", *names, "paper", "help"):
        rt.add_column(col)
    for opt, tp, default, help_ in cfgmod.describe(config):
        per = [repr(profiles[p][opt]) if opt in profiles.get(p, {}) else "·" for p in names]
        rt.add_row(opt, tp, *per, repr(default), help_)
    return rt


@main.command()
@click.pass_context
def plugins(ctx: click.Context) -> None:
    """Installed plugins (entry-point group ``ddbench``), their distributions and state; a broken one is one line
    below the table (every other command skips it) and the exit status is 1."""
    from ddbench.plugins import SELECT_ENV

    plugin_log = logging.getLogger("ddbench.plugins")
    level = plugin_log.level
    plugin_log.setLevel(logging.ERROR)  # the lines below the table say it, once
    try:
        infos = _registries().plugins(load=True)
    finally:
        plugin_log.setLevel(level)
    rt = RichTable(title="plugins")
    rt.add_column("plugin", style="bold")
    rt.add_column("distribution")
    rt.add_column("state")
    for p in infos:
        rt.add_row(p.name, p.dist, "broken" if p.broken else p.problem or "loaded")
    out.print(rt)
    broken = [p for p in infos if p.broken]
    for p in broken:
        out.print(f"broken: plugin {p.name!r} ({p.dist}): {p.problem}; other commands skip it: fix or uninstall it "
                  f"(or leave it out of {SELECT_ENV})", highlight=False, soft_wrap=True, markup=False)
    if broken:
        ctx.exit(1)



@main.command()
@click.option("-m", "--method", required=True, help="method name")
@click.option("-d", "--dataset", default="mnist", show_default=True)
@click.option("--ipc", type=int, required=True, help="images per class to export")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="folder for distilled.pt + grid.png")
@click.option("-p", "--profile", default="quick", show_default=True)
@click.option("-o", "--option", "overrides", multiple=True, help="method override key=value (as in run)")
@click.option("--seed", type=int, default=0, show_default=True, help="distillation / sampling seed")
@click.option("--fit", is_flag=True, help="generative methods: train the generator if it is not cached yet")
@click.option("--data-root", default=None)
@click.option("--download/--no-download", default=True)
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None)
@click.option("--device", default=None)
def sample(method: str, dataset: str, ipc: int, out_dir: Path, profile: str, overrides: tuple[str, ...], seed: int,
           fit: bool, data_root: str | None, download: bool, cache_dir: Path | None, device: str | None) -> None:
    """Export a distilled set (tensor file + PNG grid): a set `ddbench run` made comes from the cache; generative
    methods sample their cached generator."""

    from ddbench.api import Context, GenerativeDistiller
    from ddbench.cache import ArtifactCache
    from ddbench.datasets import load
    from ddbench.export import export_distilled
    from ddbench.profiles import get_profile
    from ddbench.runner import distilled_set, parse_ipcs, resolve_device

    parse_ipcs([ipc])
    dev = resolve_device(device)
    if out_dir.exists() and not out_dir.is_dir():
        raise DDBenchError(f"--out {out_dir} is a file; `ddbench sample` writes a folder (distilled.pt, grid.png): "
                           f"give a folder path")
    _check_out_file(out_dir / "distilled.pt")
    regs = _registries()
    cls = regs.methods.get(method)
    spec = regs.datasets.get(dataset)
    prof = get_profile(profile)
    config = cfgmod.build(cls.Config, prof.name, cls.profiles, parse_overrides(overrides), owner=f"method {method!r}")
    train = load(spec, "train", data_root, download)
    cache = ArtifactCache(cache_dir)
    with _progress() as bar:
        ctx = Context(spec, regs.networks, cache, dev, RichProgress(bar), cache.root / "checkpoints", prof.name,
                      data_id=f"{spec.name}:{train.fingerprint()}")
        distiller = cls(config, ctx)
        if isinstance(distiller, GenerativeDistiller) and not fit and not cache.has(
                distiller.artifact_kind, distiller.config_key(seed=seed)):
            raise DDBenchError(f"no cached generator for {method} on {dataset} (profile {profile}, seed {seed}); "
                               f"run `ddbench run` with the same options first, or add --fit to train it now")
        distilled, seconds, from_cache = distilled_set(distiller, train, ipc, seed, cache)
    paths = export_distilled(distilled, spec, out_dir)
    how = f"from the cache (distilled in {seconds:.1f} s)" if from_cache else f"in {seconds:.2f} s"
    console.print(f"{len(distilled)} images {how} -> " + ", ".join(str(p) for p in paths))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
