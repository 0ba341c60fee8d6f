"""docs/reliability.md's "What survives what" table, generated from the fault tests themselves: each family below
names its test functions, and the case counts come from pytest's own collection (parametrised cases
included, slow ones too). `docs/build.py` renders it into the page; `tests/test_docs.py` fails when a fault
test belongs to no family or the page's table differs from this output.

    .venv/bin/python -m tests.faults_table            # print the table
    .venv/bin/python docs/build.py                    # rewrite it (and every other generated block)
"""
from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ("tests/test_faults.py", "tests/test_user_errors.py", "tests/test_fuzz_data.py", "tests/test_alignment.py")

# (fault, what the user gets, the test functions that assert it)
FAMILIES = [
    ("a kill (no clean-up, as SIGKILL) just before each write boundary of a short run in turn: every rename, "
     "hard link, fsync, unlink and history append, then `--resume` (or the same command, before any config)",
     "the run finishes with the uninterrupted run's summary and history, no temporary file left",
     ["test_a_kill_at_every_write_boundary_of_a_run_leaves_one_that_resume_finishes_identically"]),
    ("SIGKILL, SIGTERM or SIGINT of a run at a random step, then `--resume` (slow, but for one SIGINT)",
     "same history steps and test metrics as an uninterrupted run; SIGINT prints one line with the `--resume` to use",
     ["test_kill_at_a_random_step_then_resume_matches_an_uninterrupted_run",
      "test_sigint_gives_one_line_marks_the_run_interrupted_and_resume_matches"]),
    ("the sweep runner killed mid-sweep, then rerun (slow); a second runner or a second writer of a run",
     "its runs stop with it; the rerun trains each step once; a second owner is refused naming the holder's pid",
     ["test_runner_killed_at_a_random_point_then_rerun_trains_every_run_once",
      "test_runs_die_with_a_killed_runner_and_a_second_runner_is_turned_away",
      "test_a_second_runner_on_a_folder_exits_at_once_naming_folder_and_pid",
      "test_a_second_writer_of_a_run_is_refused_naming_the_holder"]),
    ("checkpoints damaged (random bytes, truncated, emptied, a flipped byte, no checksum, an older sidecar "
     "format), `best.pt` lost with or without its predecessor, every `last` checkpoint lost",
     "refused naming the file; resume falls back to `*.prev.pt`, restores `best.pt` from `best.prev.pt`, or says "
     "\"cannot resume\" before any training; the runner reports it until `--fresh`",
     ["test_damaged_checkpoint_is_refused_naming_the_file",
      "test_checkpoint_without_checksum_is_refused_and_one_from_before_trailers_still_loads",
      "test_a_checked_file_loads_with_plain_torch_load_and_its_trailer_catches_a_flipped_byte",
      "test_resume_falls_back_to_the_previous_intact_checkpoint",
      "test_a_damaged_best_checkpoint_is_restored_from_its_predecessor",
      "test_a_lost_best_checkpoint_without_predecessor_stops_resume_before_any_training",
      "test_resume_with_every_checkpoint_damaged_says_it_cannot",
      "test_an_unresumable_run_is_failed_with_its_reason_until_fresh"]),
    ("a reader (predict.py) loading a checkpoint while training replaces it, hundreds of times",
     "never refused: it verifies the bytes it loads, from one read",
     ["test_a_reader_of_a_live_run_never_sees_a_damaged_checkpoint"]),
    ("`--resume` of a finished run, of one killed at its test, of one killed before its first checkpoint",
     "a no-op with one line; the test redone once (one test row, training time kept); a restart from step 0 that "
     "says so, the earlier attempt kept",
     ["test_resuming_a_finished_run_is_a_no_op_with_one_line",
      "test_a_run_killed_at_its_test_redoes_the_test_once_and_keeps_its_training_time",
      "test_a_run_stopped_before_its_first_checkpoint_resumes_from_step_0_and_says_so"]),
    ("unreadable lines in `history.jsonl`; garbage `config.json`, `summary.json`, `sweep.json`, `tokenizer/`",
     "each named as file:line; rows after it still read; resume moves unkept lines to a backup (0 lost); a damaged "
     "summary is kept aside and the run goes on",
     ["test_a_garbage_history_line_is_reported_and_the_rows_after_it_are_read",
      "test_resume_never_deletes_history_it_moves_the_unkept_lines_to_a_backup",
      "test_damaged_config_json_on_resume_names_the_file", "test_damaged_summary_is_kept_aside_and_the_run_goes_on",
      "test_damaged_tokenizer_names_the_folder", "test_report_names_a_damaged_sweep_json_and_lists_damaged_runs"]),
    ("a full disk (5 MiB tmpfs), a read-only filesystem or folder, an output folder that cannot be written",
     "one line naming the path (and the free space), before any work where it can be known; status `crashed`",
     ["test_a_write_failure_leaves_the_old_file_no_temp_file_and_a_clear_message",
      "test_read_only_output_dir_is_one_line_naming_the_path", "test_read_only_filesystem_is_a_clear_error_naming_the_path",
      "test_full_disk_ends_the_run_with_a_clear_error_and_status_crashed",
      "test_an_output_folder_that_cannot_be_written_is_named_before_any_work"]),
    ("malformed data, named cases (tags `O\\n`, `B-TIME\\n`, `B-`, non-UTF-8, nulls, ...) and 100 generated per "
     "format by hypothesis",
     "an error naming file and line; nothing half-accepted as a new class",
     ["test_massive_annotation_errors_name_file_and_line", "test_massive_label_types_are_checked",
      "test_jsonl_errors_name_file_and_line", "test_jointbert_non_utf8_names_file_and_line",
      "test_malformed_jointbert_is_a_data_error_with_file_and_line",
      "test_malformed_jsonl_is_a_data_error_with_file_and_line",
      "test_malformed_massive_is_a_data_error_with_file_and_line"]),
    ("senseless flags and identifiers: negative weights, `--run_id=abc\\n`, ids from `$WANDB_RUN_ID`, names W&B "
     "refuses, ids too long for W&B's artifact names, a flag that is not UTF-8",
     "refused before anything is written, naming the flag and what is accepted",
     ["test_senseless_flags_are_refused_naming_the_flag", "test_help_documents_every_range",
      "test_run_id_from_the_environment_cannot_escape_output_dir", "test_a_negative_flag_value_after_a_space_is_taken",
      "test_a_train_flag_that_is_not_utf8_is_refused_before_anything_is_written",
      "test_a_wandb_name_wandb_refuses_is_an_error_before_anything_is_written",
      "test_a_run_id_too_long_for_wandb_artifacts_is_refused_naming_the_limit",
      "test_a_run_id_from_the_environment_too_long_for_wandb_is_one_line"]),
    ("W&B without a login (online runs, `report.py --wandb`, the dashboard), a damaged `wandb_id` on resume",
     "one line saying to run `wandb login`, no prompt; a damaged id goes on in a new W&B run with a warning",
     ["test_wandb_without_a_login_stops_at_once_saying_what_to_do",
      "test_wandb_online_without_a_login_at_a_terminal_is_an_error_not_a_login_prompt",
      "test_a_damaged_wandb_id_on_resume_goes_on_in_a_new_wandb_run"]),
    ("Ctrl-C pressed twice, at chosen points of each command",
     "one line, exit status 130, the run marked interrupted with its record whole",
     ["test_ctrl_c_twice_prints_one_line_and_no_traceback",
      "test_ctrl_c_again_while_the_run_is_marked_interrupted_keeps_the_record"]),
    ("a run folder whose encoder or tokenizer config names custom code, at a terminal and with `y` on stdin",
     "refused with one line; nothing from the folder runs; a run trained on such an encoder saves a folder that "
     "loads",
     ["test_a_run_folder_naming_custom_code_is_refused_and_nothing_in_it_runs",
      "test_a_run_folder_naming_custom_code_at_a_terminal_asks_nothing_and_runs_nothing",
      "test_resume_refuses_a_run_folder_whose_tokenizer_names_custom_code",
      "test_an_encoder_whose_config_names_custom_code_trains_into_a_folder_that_loads"]),
    ("command lines users type: options after the sentences or folders, arguments or stdin that are not UTF-8, "
     "escaped bytes to the segmenter, a missing dataset",
     "accepted where valid; otherwise one line naming the argument (byte offset) or stdin:line:column",
     ["test_predict_options_work_before_between_and_after_the_sentences", "test_analysis_options_work_between_the_folders",
      "test_a_predict_argument_that_is_not_utf8_is_named_with_its_byte_offset",
      "test_predict_stdin_that_is_not_utf8_names_stdin_line_and_byte",
      "test_the_segmenters_refuse_escaped_bytes_with_a_value_error",
      "test_data_card_names_a_missing_dataset_in_one_line"]),
    ("words a tokenizer turns into no subword (zero-width, soft hyphen), with a perfect tagger, on a long-tail set",
     "each later word scored by its own subword (F1 1.0); dropped words reported, tagged O",
     ["test_each_word_after_a_dropped_word_reads_its_own_first_subword",
      "test_a_dropped_word_is_told_apart_from_words_cut_off_by_max_length",
      "test_slow_and_fast_tokenizers_agree_on_a_word_with_no_subword",
      "test_a_perfect_tagger_scores_perfectly_on_an_imbalanced_long_tail_set_with_dropped_words",
      "test_training_warns_once_per_split_with_examples_and_keeps_gold_tags",
      "test_predict_lists_dropped_words_per_sentence"]),
]
HYPOTHESIS_CASES = 100  # examples per generated test (tests/test_fuzz_data.py's settings)


def collected() -> Counter:
    """Test function -> number of collected cases, slow ones included."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "slow or not slow",
                          "-p", "no:cacheprovider", *FILES], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return Counter(re.sub(r"\[.*", "", line).split("::")[-1] for line in out.splitlines() if "::" in line)


def table(counts: Counter) -> str:
    rows = ["| fault | cases | what the user gets |", "|---|---|---|"]
    for fault, outcome, tests in FAMILIES:
        cases = sum(counts[t] * (HYPOTHESIS_CASES if t.startswith("test_malformed_") else 1) for t in tests)
        rows.append(f"| {fault} | {cases} | {outcome} |")
    total = sum(counts[t] * (HYPOTHESIS_CASES if t.startswith("test_malformed_") else 1)
                for _, _, tests in FAMILIES for t in tests)
    rows.append(f"| all of the above ({len(FILES)} test files) | {total} | |")
    return "\n".join(rows) + "\n"


def unassigned(counts: Counter) -> list[str]:
    named = [t for _, _, tests in FAMILIES for t in tests]
    return sorted(set(counts) - set(named)) + sorted(t for t in set(named) if named.count(t) > 1 or t not in counts)


def main() -> int:
    counts = collected()
    if unassigned(counts):
        sys.exit(f"fault tests in no family (or named twice, or gone): {', '.join(unassigned(counts))}")
    print(table(counts), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
