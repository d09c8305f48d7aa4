"""Loading spec files: reading and parsing each file once, its imports (confined to the spec's tree and
the import path, cycles reported), and what each file defines: constants and blocks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..diagnostics import Code, DiagnosticSink, Location, SpecError, UsageError
from ..limits import Limits
from ..ops import REGISTRY
from ..syntax import ast as A
from ..syntax.parse import parse
from ..syntax.source import read_source, source_from_bytes
from .scope import BlockInfo, Constants, ModuleEnv, duplicate, loc


class Loader:
    def __init__(self, sink: DiagnosticSink, limits: Limits, import_roots: Sequence[Path], constants: Constants):
        self.sink = sink
        self.limits = limits
        self.import_roots = [resolved(root) for root in import_roots]  # the first is the spec's directory
        self.constants = constants
        self.envs: dict[Path, ModuleEnv] = {}  # by resolved path: a file imported twice is loaded once
        self.given: dict[Path, str] = {}  # texts given as strings (`cnndsl.loads`), by resolved path

    def load(self, path: Path, stack: tuple[Path, ...], shown: str, importer: Location | None = None
             ) -> ModuleEnv | None:
        """The environment of the file at `path` (shown in diagnostics as `shown`), loading it and its
        imports first; None after reporting why it cannot be loaded. `stack`: the files importing it."""
        here = resolved(path)
        if here in stack:
            cycle = " -> ".join(p.name for p in (*stack[stack.index(here):], here))
            self.sink.emit(Code.E501, f"cyclic import: {cycle}", importer,
                           hint="move the shared blocks into a third file that both import")
            return None
        if here in self.envs:
            return self.envs[here]
        try:
            given = self.given.get(here)
            source = (read_source(path, shown, self.limits.spec_bytes) if given is None else
                      source_from_bytes(given.encode("utf-8", "surrogatepass"), shown, self.limits.spec_bytes))
        except UsageError as exc:
            if importer is None:
                raise
            what = exc.diagnostic.message if exc.diagnostic else str(exc)
            self.sink.emit(Code.E500, f'cannot import "{shown}": {what}', importer,
                           hint="import paths are relative to the importing file, or to a directory of the import "
                                "path (`--import-path`, $CNNDSL_PATH; `import_path=` in Python)")
            return None
        self.sink.sources[source.path] = source  # diagnostics quote their line from it
        try:
            module = parse(source, self.limits)
        except SpecError as exc:
            self.sink.extend(exc.diagnostics)
            return None
        env = ModuleEnv(source.path, module)
        self.envs[here] = env
        for stmt in module.statements:
            if isinstance(stmt, A.Import):
                self.import_into(env, stmt, path, (*stack, here))
            elif isinstance(stmt, A.Const):
                self.constants.define_in_file(env, stmt)
            elif isinstance(stmt, A.BlockDef):
                self.define_block(env, stmt)
        return env

    def import_into(self, env: ModuleEnv, stmt: A.Import, importer_path: Path, stack: tuple[Path, ...]) -> None:
        target = self.resolve_import(stmt, importer_path, env)
        shown = str(Path(env.path).parent / stmt.path) if not Path(stmt.path).is_absolute() else stmt.path
        child = None if target is None else self.load(target, stack, shown, loc(env, stmt))
        if child is None or child.incomplete:
            # What the file would have defined is unknown: its names are not reported as unknown here.
            env.incomplete = True
        if child is None:
            return
        for name, info in child.blocks.items():
            existing = env.blocks.get(name)
            if existing is not None and existing.definition is not info.definition:
                duplicate(self.sink, "block", name, loc(env, stmt), loc(existing.env, existing.definition.name))
            env.blocks[name] = info
        for name, value in child.consts.items():
            if name in env.consts and env.const_origin[name] != child.const_origin[name]:
                duplicate(self.sink, "constant", name, loc(env, stmt), env.const_origin[name])
            env.consts[name] = value
            env.const_origin[name] = child.const_origin[name]

    def resolve_import(self, stmt: A.Import, importer_path: Path, env: ModuleEnv) -> Path | None:
        """The file an import names: relative to the importing file, else to a directory of the import
        path; it must be a `.cnn` file inside the spec's directory tree or the import path's (E500), so a
        downloaded spec cannot read `/etc/shadow` or `../../.ssh/...` into its error messages."""
        where = loc(env, stmt)
        name = stmt.path
        if "\x00" in name or not name.strip():
            self.sink.emit(Code.E500, f"import path {name!r} is not a file name", where)
            return None
        if not name.endswith(".cnn"):
            self.sink.emit(Code.E500, f'import "{name}": only .cnn files can be imported', where,
                           hint='name a spec file: `import "blocks.cnn"`')
            return None
        relative = Path(name)
        candidates = [relative] if relative.is_absolute() else [importer_path.parent / relative,
                                                                  *(root / relative for root in self.import_roots[1:])]
        existing = next((c for c in candidates if _exists(c)), candidates[0])
        target = resolved(existing)
        if not any(target.is_relative_to(root) for root in self.import_roots):
            allowed = ", ".join(str(root) for root in self.import_roots)
            self.sink.emit(Code.E500, f'import "{name}" resolves to {target}, outside the directories specs may '
                           f"import from ({allowed})", where,
                           hint="imports stay inside the spec's directory; allow another directory on the import "
                                "path (`--import-path DIR`, $CNNDSL_PATH; `import_path=` in Python)")
            return None
        return existing

    def define_block(self, env: ModuleEnv, stmt: A.BlockDef) -> None:
        name = stmt.name.name
        if name in env.blocks:
            existing = env.blocks[name]
            duplicate(self.sink, "block", name, loc(env, stmt.name), loc(existing.env, existing.definition.name))
            return
        if name in REGISTRY:
            self.sink.emit(Code.E202, f"block `{name}` has the name of a built-in op", loc(env, stmt.name),
                           hint="choose another name; ops cannot be redefined")
            return
        seen: set[str] = set()
        defaulted = False
        for param in stmt.params:
            where = loc(env, param.name)
            if param.name.name in seen:
                self.sink.emit(Code.E503, f"parameter `{param.name.name}` of block `{name}` is declared twice", where)
            seen.add(param.name.name)
            if param.default is None and defaulted:
                self.sink.emit(Code.E503, f"parameter `{param.name.name}` of block `{name}` has no default but follows "
                               "one that has", where, hint="put parameters with defaults last")
            defaulted = defaulted or param.default is not None
        env.blocks[name] = BlockInfo(stmt, env)


def resolved(path: Path) -> Path:
    """`path` made absolute with symbolic links resolved; a loop or an unusable path resolves to itself
    (reading it then reports the problem)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return path.absolute()


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):
        return False
