"""apply_patch's pure core: diffs (unified or `*** Begin Patch`) read, located and applied.

No file system here: `plan_patch(diff, read)` takes the current text of each file through
`read` and returns what every changed file becomes, or raises PatchConflict (a PatchError
whose `details` list each refused hunk). The caller writes the result all or nothing.
"""

from ide_client.patch.matcher import apply_hunks
from ide_client.patch.model import Conflict, FilePatch, Hunk, HunkLine, PatchConflict, PatchError
from ide_client.patch.plan import (
    PlannedFile,
    Reader,
    parse_patch,
    plan_file_patches,
    plan_patch,
)

__all__ = [
    "Conflict",
    "FilePatch",
    "Hunk",
    "HunkLine",
    "PatchConflict",
    "PatchError",
    "PlannedFile",
    "Reader",
    "apply_hunks",
    "parse_patch",
    "plan_file_patches",
    "plan_patch",
]
