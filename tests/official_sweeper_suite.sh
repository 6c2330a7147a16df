#!/usr/bin/env bash
# The official hydra-optuna-sweeper test suite run against qa-lab's study sweeper (README, "In any Hydra app").
#   tests/official_sweeper_suite.sh <a Hydra source tree> [pytest arguments]
# The test file comes from the PyPI sdist of the installed hydra-optuna-sweeper (the same version), its example
# apps and test configs from the Hydra source tree (a clone of github.com/facebookresearch/hydra): neither is
# kept in this repository. Every `hydra/sweeper=optuna` becomes `hydra/sweeper=qa_lab`, and the discovery
# test looks for qa-lab's sweeper. Not part of `make test`: it needs the sdist from PyPI.
set -euo pipefail
HYDRA_SRC=$(cd "${1:?give a Hydra source tree: git clone https://github.com/facebookresearch/hydra}" && pwd)
shift
PYTHON=$(cd "$(dirname "${PYTHON:-.venv/bin/python}")" && pwd)/$(basename "${PYTHON:-.venv/bin/python}")
WORK=$(mktemp -d /tmp/qa-lab-official-sweeper-suite.XXXXXX)
VERSION=$("$PYTHON" -c "import importlib.metadata as m; print(m.version('hydra-optuna-sweeper'))")
"$PYTHON" -m pip download --quiet --no-deps --no-binary :all: -d "$WORK/sdist" "hydra-optuna-sweeper==$VERSION"
tar -xzf "$WORK"/sdist/*.tar.gz -C "$WORK"
ROOT="$WORK/hydra_optuna_sweeper-$VERSION"
rm -rf "$ROOT/hydra_plugins"  # the installed plugin is the one qa-lab's sweeper builds on
cp -r "$HYDRA_SRC/plugins/hydra_optuna_sweeper/example" "$ROOT/"
cp -r "$HYDRA_SRC/plugins/hydra_optuna_sweeper/tests/conf" "$ROOT/tests/"
SWEEPER=${SWEEPER:-qa_lab}  # SWEEPER=optuna: the official sweeper itself, for comparison
if [ "$SWEEPER" = qa_lab ]; then
  grep -rlE "hydra/sweeper(=|: )optuna|import OptunaSweeper" "$ROOT/tests" "$ROOT/example" | xargs sed -i -E \
    -e 's#hydra/sweeper(=|: )optuna#hydra/sweeper\1qa_lab#' \
    -e 's#^from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper#from qa_lab.studies.sweeper import StudySweeper as OptunaSweeper#'
fi
echo "the official suite of hydra-optuna-sweeper $VERSION against hydra/sweeper=$SWEEPER, in $ROOT"
cd "$ROOT" && "$PYTHON" -m pytest -p no:cacheprovider -q -o addopts="" -rf tests "$@"
