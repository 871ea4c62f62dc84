"""The Gaussian experiment: P(injective) of iid N(0,1) bias-free layers, every trial
decided exactly (docs/experiment.md).

``exact-inj experiment gaussian`` draws, for each input
dimension n and row count m = round(ratio * n), ``trials`` weight matrices W with
iid N(0, 1) entries and no bias, decides each layer x -> ReLU(Wx) exactly with
:func:`exact_inj.verify`, and estimates P(injective) with a Wilson interval.

Design points, each for a reason:

* **Per-trial seeds.** Trial t of the point (n, m) draws its matrix from
  ``numpy.random.default_rng([seed, n, m, t])``.  No generator is shared between
  trials, so results cannot depend on the worker count, the scheduling order or
  on which trials an interrupted run had already done; and any single trial can
  be rebuilt on its own (``exact-inj construct gaussian --seed S --n N --m M
  --trial T`` writes it).
* **Exact inputs.** Each float is converted with ``Fraction(float)``, its exact
  binary value, so the layer decided is exactly the layer drawn.
* **Exact answers only.** A trial counts as injective or not injective only
  with a certificate that passed the exact checker (``verify`` guarantees it);
  anything else is ``unknown`` and is reported, never guessed.  The MILP side
  search is switched off (``milp="none"``): it adds a process per trial and
  nothing a small layer needs.
* **Resumable.** Every finished trial is appended to ``trials.jsonl`` in the
  output folder at once; running the same command again skips the trials it
  holds.  Decided trials are exact, so a resumed run gives the same totals.

The modules: :mod:`.params` (the grid), :mod:`.trials` (one trial),
:mod:`.stats` (intervals, closed forms, crossings), :mod:`.crossing` (the
logistic crossing of 1/2 with its 95% interval), :mod:`.store`
(trials.jsonl), :mod:`.run` (:func:`run_experiment`), :mod:`.output` (CSV files
and the plot) and :mod:`.cli`.
"""

from .cli import EPILOG, add_parser, summary
from .crossing import CrossingEstimate, LogisticFit, NoCrossing, closed_form_crossing, crossing_estimates, fit_logistic
from .output import (BRACKET_HEADER, CROSSINGS_HEADER, CSV_HEADER, SIGNPOSTS, plot, plot_crossings, read_csv,
                     write_bracket_csv, write_crossings_csv, write_csv)
from .params import RatiosSpec, TrialsSpec, grid, parse_ns, parse_ratio_specs, parse_ratios, parse_trials, round_half_up
from .run import (BRACKET_NAME, CROSSINGS_NAME, CROSSINGS_PLOT_NAME, CSV_NAME, PLOT_NAME, TRIALS_NAME,
                  ExperimentResult, run_experiment)
from .stats import Acceptance, Crossing, Point, Z95, acceptance, closed_form, crossings, tally, wilson
from .store import TrialStore
from .trials import Task, TrialResult, decide_trial, trial_network, trial_weight

# The command-line entry point is exact_inj.studies.experiment.cli.run: the
# name ``run`` here is the submodule that runs the experiment.
__all__ = [
    "CROSSINGS_HEADER", "CROSSINGS_NAME", "CROSSINGS_PLOT_NAME", "CrossingEstimate", "LogisticFit", "NoCrossing",
    "RatiosSpec", "closed_form_crossing", "crossing_estimates", "fit_logistic", "parse_ratio_specs",
    "plot_crossings", "write_crossings_csv",
    "BRACKET_HEADER", "BRACKET_NAME", "CSV_HEADER", "CSV_NAME", "EPILOG", "PLOT_NAME", "SIGNPOSTS", "TRIALS_NAME",
    "Z95", "Acceptance", "Crossing", "ExperimentResult", "Point", "Task", "TrialResult", "TrialStore", "TrialsSpec",
    "acceptance", "add_parser", "closed_form", "crossings", "decide_trial", "grid", "parse_ns", "parse_ratios",
    "parse_trials", "plot", "read_csv", "round_half_up", "run_experiment", "summary", "tally", "trial_network",
    "trial_weight", "wilson", "write_bracket_csv", "write_csv",
]
