"""Old import paths keep working for one release (exact_inj.legacy).

OLD_NAMES lists the public names each module of the flat layout (0.1, before
the restructure) defined itself, read from that commit's sources; each must
still be importable from the old path.  (cli's EPILOG and SHOWN_COORDINATES,
help-text constants, are left out.)
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

OLD_NAMES = {'api': ['check', 'load_certificate', 'verify'],
 'argtypes': ['nonneg_int', 'pos_int', 'positive_float'],
 'backend': ['HIGHS_STATUS', 'INF', 'Outcome', 'highs_outcome', 'new_highs', 'pass_lp', 'solve_milp_highs',
             'solve_milp_pulp', 'to_pulp'],
 'certificate': ['Bound', 'COLLAPSE', 'CORE_BASE', 'Certificate', 'ConvStructuralProof', 'Core', 'Domain',
                 'EmptyDomainProof', 'EndToEndProof', 'Evidence', 'FORMAT', 'Flat', 'Infeasible', 'LayerwiseProof',
                 'LinearRankProof', 'RANK_LEAF', 'REGION', 'SPLIT', 'StageProof', 'StructuralProof', 'Tight',
                 'TreeProof', 'VERSION', 'Witness'],
 'checker': ['CheckResult', 'SYMPY_EVAL_LIMIT', 'SYMPY_RANK_LIMIT', 'bound_value', 'check', 'check_core',
             'check_witness', 'verify_flat', 'verify_infeasible', 'verify_tight'],
 'cli': ['EXIT_BAD_INPUT', 'EXIT_INJECTIVE', 'EXIT_INTERNAL', 'EXIT_INVALID', 'EXIT_NOT_INJECTIVE', 'EXIT_UNKNOWN',
         'EXIT_VALID', 'VERDICT_EXIT', 'main', 'parse_domain'],
 'compare': ['BoxDecider', 'CSV_HEADER', 'LEGEND', 'Progress', 'SKIP_NAMES', 'SUFFIXES', 'add_parser', 'collect',
             'compare', 'domains_supported', 'format_table', 'inner_box', 'outer_box', 'refute', 'run', 'to_csv',
             'to_markdown'],
 'construct': ['BMinusDB', 'add_parser', 'bminusdb', 'dcgan', 'dumps_network', 'exact_str', 'gaussian',
               'parse_matrix', 'parse_vector', 'run'],
 'conv': ['ConvLayer', 'ConvSpec', 'MAX_OPERATOR_ENTRIES', 'OperatorTooLarge', 'PADDINGS', 'conv_operator',
          'normalize_pads'],
 'convproof': ['PRIMES_TRIED', 'channel_pairs', 'few_rows_witness', 'full_column_rank', 'periodic_null_vector',
               'structural_proof'],
 'endtoend': ['EndToEndResult', 'SLACK_TOL', 'SUPPORT_TOL', 'decide'],
 'engine': ['END_TO_END_MAX_INPUTS', 'END_TO_END_MAX_NEURONS', 'HINGE_TOL', 'MILP_EAGER_N', 'MILP_LATE_SECONDS',
            'Progress', 'certified', 'decide_layer', 'decide_network', 'find_structural_pairs', 'hinge_witness',
            'witness_from_negative_set'],
 'exact_lp': ['equations_as_rows', 'motzkin_rows', 'strict_or_motzkin'],
 'experiment': ['Acceptance', 'BRACKET_HEADER', 'BRACKET_NAME', 'CSV_HEADER', 'CSV_NAME', 'Crossing', 'EPILOG',
                'ExperimentResult', 'PLOT_NAME', 'Point', 'SIGNPOSTS', 'TRIALS_NAME', 'Task', 'TrialResult',
                'TrialStore', 'TrialsSpec', 'Z95', 'acceptance', 'add_parser', 'closed_form', 'crossings',
                'decide_trial', 'grid', 'parse_ns', 'parse_ratios', 'parse_trials', 'plot', 'read_csv',
                'round_half_up', 'run', 'run_experiment', 'summary', 'tally', 'trial_network', 'trial_weight',
                'wilson', 'write_bracket_csv', 'write_csv'],
 'folds': ['MAX_STEPS', 'Point', 'fold_witness'],
 'formulation': ['INF', 'Milp', 'core_lp', 'float_rows', 'node_lp', 'witness_milp'],
 'heuristics': ['BALL_HEURISTICS', 'CLAIMS', 'Claim', 'Heuristic', 'INJECTIVE', 'LEI_NOTE', 'LEI_RATIO',
                'NOT_INJECTIVE', 'NO_COUNTEREXAMPLE', 'REALS', 'REFUTABLE_BALL', 'REFUTABLE_NEVER',
                'REFUTABLE_REALS_INJ', 'REFUTABLE_REALS_NOT', 'ball_bias_bound', 'ball_domain', 'ball_sampled',
                'exact_witness_at', 'expansivity_2_1n', 'expansivity_2n', 'gradient', 'jacobian_rank', 'lemma1',
                'lemma1_reduction', 'rng_for', 'run_heuristic', 'sampling', 'verified_witness'],
 'io': ['InputError', 'MAX_EXPONENT', 'fraction_to_str', 'load_json_file', 'load_network', 'loads_exact',
        'network_from_json', 'network_to_json', 'parse_exact'],
 'linalg': ['common_denominator', 'integer_rows', 'nullspace', 'primitive', 'rank', 'rank_q', 'round_hint',
            'scaled_integer_rows', 'solve_affine', 'solve_square', 'to_fmpq'],
 'milp_worker': ['main', 'run'],
 'model': ['ACTIVATIONS', 'Layer', 'Matrix', 'Network', 'Vector', 'relu'],
 'modrank': ['MAX_FREQUENCIES', 'MAX_MODULAR_ENTRIES', 'PRIME_CEILING', 'PRIME_FLOOR', 'SMALL_PRIME',
             'banded_full_rank', 'check_size', 'has_order', 'independent_rows', 'is_prime', 'prime_factors',
             'primes_with_roots', 'rows_have_full_rank', 'symbol_rank_deficiency'],
 'network': ['Stage', 'compose', 'contains', 'degenerate_rows', 'image_box', 'lifted_witness', 'linear_rank',
             'linear_witness', 'narrow_witness', 'pair_along', 'singular_piece_witness', 'stages'],
 'onnx_import': ['SUPPORTED_OPS', 'load_onnx', 'network_from_onnx_bytes', 'network_from_onnx_model'],
 'pieces': ['PairRows', 'Prefix', 'Row', 'Walker', 'combine', 'pair_system', 'separated'],
 'search': ['CoreLP', 'CoreStore', 'LayerData', 'NodeLP', 'STORE_REST_MAX', 'STORE_WINDOW', 'STRENGTHEN_RANK_GAP',
            'SUPPORT_TOL', 'S_ONE', 'S_ZERO', 'SearchResult', 'SearchStats', 'exact_core', 'exact_node',
            'finish_witness', 'make_witness', 'strict_point', 'tree_search'],
 'stability': ['FORMAT', 'Grams', 'HALF_NOTE', 'METHOD', 'PAPER_NOTE', 'StabilityCheck', 'StabilityResult',
               'VERSION', 'add_parser', 'check_stability', 'format_result', 'inv_sqrt_lower', 'leading_minors',
               'run', 'sqrt_lower', 'sqrt_upper', 'stability'],
 'torch_import': ['ARCHITECTURE_KEY', 'architecture_of', 'load_torch', 'network_from_sequential',
                  'network_from_state_dict', 'network_from_torch_bytes', 'save_sequential'],
 'verdict': ['Status', 'Verdict'],
 'vnnlib': ['Box', 'BoxUnion', 'MAX_BOXES', 'load_vnnlib', 'parse_vnnlib']}


@pytest.mark.parametrize("module", sorted(OLD_NAMES))
def test_old_module_path_still_imports(module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        m = importlib.import_module(f"exact_inj.{module}")
    missing = [n for n in OLD_NAMES[module] if not hasattr(m, n)]
    assert not missing, f"exact_inj.{module} lost {missing}"


def test_moved_paths_warn_and_name_the_new_home():
    code = ("import warnings; warnings.simplefilter('error')\n"
            "try:\n    import exact_inj.engine\nexcept DeprecationWarning as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "exact_inj.engine has moved to exact_inj.layer.decide" in out


def test_old_and_new_paths_give_the_same_objects():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from exact_inj.certificate import Domain as OldDomain
        from exact_inj.engine import decide_layer as old_decide
    from exact_inj.layer.decide import decide_layer
    from exact_inj.model import Domain

    assert OldDomain is Domain and old_decide is decide_layer


def test_old_experiment_run_is_still_the_command():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from exact_inj.experiment import run
        from exact_inj.stability import run as stability_run
    assert callable(run) and callable(stability_run)
