"""The GitLab artifact store: the stored runs a job keeps in its artifacts, read through GitLab's
raw artifact endpoint with ``CI_JOB_TOKEN`` (``perfgate baseline fetch``). Read only: the job that
keeps the artifact promotes into its own directory store."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .base import DEFAULT_KEEP, INDEX_NAME, Baseline, names_a_directory

if TYPE_CHECKING:
    from ..gitlab import GitLab
    from ..model import RunResult

#: where the default-branch job of ci/perfgate.gitlab-ci.yml keeps the run history: a directory
#: store (its index lists the runs, oldest first)
FETCH_JOB, FETCH_PATH = "perfgate-baseline", ".perfgate/baseline/"
#: what that job kept before it kept a history (one results file): read when FETCH_PATH has no
#: index, so that the artifact of a job set up before still serves as a baseline
LEGACY_FETCH_PATH = ".perfgate/results.json"


@dataclass(frozen=True)
class ArtifactStore:
    """The runs at ``path`` in the artifacts of ``job`` in the latest successful pipeline on
    ``ref``: a directory of stored runs when ``path`` names one (:func:`names_a_directory`; the
    newest ``keep`` its index lists), else one results file. ``path=None`` reads
    :data:`FETCH_PATH`, then :data:`LEGACY_FETCH_PATH`."""

    ref: str
    job: str = FETCH_JOB
    path: str | None = None
    keep: int = DEFAULT_KEEP

    @property
    def location(self) -> str:
        return f"artifacts of job {self.job!r} on {self.ref}"

    @property
    def paths(self) -> tuple[str, ...]:
        """The artifact paths looked at, in order."""
        return (self.path,) if self.path is not None else (FETCH_PATH, LEGACY_FETCH_PATH)

    def where(self, file: str) -> str:
        """How a file of the artifact is named in messages."""
        return f"artifact {file} of job {self.job!r} on {self.ref}"

    def missing(self) -> str:
        """What to say when :meth:`load` finds no baseline."""
        shown = [p.rstrip("/") + "/" + INDEX_NAME if names_a_directory(p) else p for p in self.paths]
        nor = "".join(f" (nor {p})" for p in shown[1:])
        return (
            f"no baseline yet (first run on {self.ref}): no artifact {shown[0]}{nor} of job {self.job!r} on {self.ref}"
        )

    def load(self) -> Baseline | None:
        """The runs of the first path that is there (``None`` when none is: 404, no such pipeline,
        job or file yet); an index that lists no runs is a baseline of no runs. Everything is read
        and checked before it is returned; a corrupt file, or a run the index lists that is not in
        the artifact, is a :class:`ResultsFileError` naming its path in the artifact."""
        from ..gitlab import from_environment

        client = from_environment(job_token=True)
        for path in self.paths:
            found = self._load(client, path)
            if found is not None:
                return found
        return None

    def promote(self, run: RunResult, *, keep: int = DEFAULT_KEEP) -> str:
        from ..errors import GateError

        raise GateError(f"{self.location}: a job's artifacts are read only; promote into a baseline directory")

    def _load(self, client: GitLab, path: str) -> Baseline | None:
        """A directory is read through its index (the raw endpoint serves single files, not
        listings): the index, then the newest ``keep`` runs it lists, oldest first."""
        from ..errors import ResultsFileError
        from .files import parse_index

        with tempfile.TemporaryDirectory(prefix="perfgate-fetch-") as tmp:
            if not names_a_directory(path):
                content = client.artifact(self.ref, path, self.job)
                if content is None:
                    return None
                return Baseline(self.where(path), (self._parse(content, path, tmp),), (self.where(path),))
            directory = path if path.endswith("/") else path + "/"
            # a newer baseline job may finish while the files are read: the raw endpoint then serves
            # its artifact, which may have dropped the oldest run the first index listed; read it all again
            missing = ""
            for _ in range(2):
                index = client.artifact(self.ref, directory + INDEX_NAME, self.job)
                if index is None:
                    return None
                names = parse_index(index, self.where(directory + INDEX_NAME))[-self.keep :]
                contents = [(name, client.artifact(self.ref, directory + name, self.job)) for name in names]
                missing = next((name for name, content in contents if content is None), "")
                if not missing:
                    runs = tuple(self._parse(c, directory + name, tmp) for name, c in contents if c is not None)
                    return Baseline(self.where(directory), runs, tuple(self.where(directory + n) for n in names))
        raise ResultsFileError(
            self.where(directory + missing),
            f"listed in {directory}{INDEX_NAME} but not in the artifact (404), twice: the artifact is incomplete",
        )

    def _directory(self) -> str | None:
        path = self.path if self.path is not None else FETCH_PATH
        if not names_a_directory(path):
            return None
        return path if path.endswith("/") else path + "/"

    def file(self, name: str) -> bytes | None:
        """A file next to the stored runs (``None``: not in the artifact, or the path is one
        results file)."""
        from ..gitlab import from_environment

        directory = self._directory()
        if directory is None:
            return None
        return from_environment(job_token=True).artifact(self.ref, directory + name, self.job)

    def history_files(self) -> dict[str, bytes]:
        """The long history the job keeps next to its stored runs (``history.jsonl`` and its
        earlier parts, :func:`~pytest_perfgate.history.log.history_files`); empty when it keeps
        none (a job set up before the history existed, or a path that is one results file)."""
        from ..history.log import history_files

        directory = self._directory()
        if directory is None:
            return {}
        return history_files(self.file, lambda name: self.where(directory + name))

    def _parse(self, content: bytes, file: str, tmp: str) -> RunResult:
        from ..errors import ResultsFileError
        from ..importers import load_run

        local = Path(tmp, Path(file).name or "results.json")
        local.write_bytes(content)
        try:
            return load_run(local)
        except ResultsFileError as exc:
            raise ResultsFileError(self.where(file), exc.reason) from None
