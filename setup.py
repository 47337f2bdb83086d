"""The installed form (README, *Installed form*): one package, `poster_search`, holding the project's modules.

In a checkout the modules import one another by their own short names (`from store.schema import
...`), as the repository is laid out (cli.py, ingest/, search/, ...). Installed under one package
they keep those names, so nothing lands in site-packages beside it: the package's __init__, written
here at build time (the repository has no root __init__.py), puts its own folder on sys.path.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

INIT = '''"""poster search, installed: this folder holds the project's modules, which import one another by
the names they have in a checkout (store, search, regression, ...). Importing this package puts the
folder first on sys.path; `poster-search` (the console command) runs main()."""

import os as _os
import sys as _sys

_HERE = _os.path.dirname(_os.path.abspath(__file__))
if _HERE not in _sys.path:
    _sys.path.insert(0, _HERE)


def main() -> None:
    from cli import main as cli_main

    cli_main()
'''


class BuildWithInit(build_py):
    def run(self) -> None:
        super().run()
        package = Path(self.build_lib) / "poster_search"
        (package / "setup.py").unlink(missing_ok=True)  # the build script sits in the package's folder, but is not part of it
        (package / "__init__.py").write_text(INIT)


setup(cmdclass={"build_py": BuildWithInit})
