"""Files that are type-checked (mypy and pyright in .ci/run), never run: stamina's tests/typing."""
