"""What a folder holds, to check that a run wrote (or left) exactly what it should."""
import os


def read_tree(root):
    """{path relative to ``root``: bytes} of every file below ``root`` (links not followed)."""
    found = {}
    for parent, _, names in os.walk(root):
        for name in names:
            path = os.path.join(parent, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, root)] = f.read()
    return found
