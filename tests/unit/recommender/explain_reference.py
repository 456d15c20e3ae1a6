"""A straightforward per-item reference of recommender.explain.explain_lists (the code before it was
vectorised): each (student, module) reads its own numbers, one at a time. Tests compare the batch
explanations with it item by item."""

from __future__ import annotations

from typing import Any

import numpy as np

from features.featureset import TRACKS, FeatureSet
from recommender.base import RankedLists, TermContext
from recommender.competency_gap import CompetencyGapComponent
from recommender.explain import MAX_REASONS, MIN_REASONS, Explanation, _join, demand_word, risk_level


def _competency(
    model: Any, student_row: int, module_row: int, occupation: int | None
) -> tuple[str | None, list[str], list[str], dict[str, Any]]:
    fs: FeatureSet = model.fs_
    if occupation is not None:
        targets = np.array([occupation], dtype=np.int64)
    else:
        goals = fs.student_goals
        start, end = goals.indptr[student_row], goals.indptr[student_row + 1]
        targets = goals.indices[start:end][goals.data[start:end] > 0].astype(np.int64)
    if len(targets) == 0 or fs.module_competency.nnz == 0:
        return None, [], [], {}
    competencies, closed = CompetencyGapComponent.closes(fs, student_row, module_row, occupation)
    if len(competencies) == 0:
        return None, [], [], {}
    top = competencies[:3]
    demand = fs.occupation_demand[np.ix_(targets, top)]
    wanting = targets[demand.max(axis=1) > 0]
    if len(wanting) == 0:
        return None, [], [], {}
    wanting = wanting[np.argsort(-fs.occupation_demand[np.ix_(wanting, top)].sum(axis=1), kind="stable")][:2]
    comp_labels = getattr(model, "labels_", {}).get("competencies", {})
    occ_labels = getattr(model, "labels_", {}).get("occupations", {})
    builds = [comp_labels.get(fs.competencies.id(int(c)), fs.competencies.id(int(c))) for c in top]
    occupations = [occ_labels.get(fs.occupations.id(int(o)), fs.occupations.id(int(o))) for o in wanting]
    weight = float(fs.occupation_weight[wanting[0]]) if len(fs.occupation_weight) else 1.0
    evidence = {
        "competencies": [fs.competencies.id(int(c)) for c in top],
        "gap_closed": [round(float(x), 4) for x in closed[:3]],
        "occupations": [fs.occupations.id(int(o)) for o in wanting],
        "occupation_weight": round(weight, 3),
    }
    reason = (
        f"Builds {_join(builds)}, which {_join(occupations)} roles demand ({demand_word(weight)} demand) "
        f"and you have not shown yet."
    )
    return reason, builds, [fs.occupations.id(int(o)) for o in wanting], evidence


def _peer(n_peers: int, took: int, passed: int) -> tuple[str | None, dict[str, Any]]:
    evidence = {"n_peers": n_peers, "took_next": took, "passed_next": passed}
    if n_peers == 0 or took == 0 or round(100 * took / n_peers) == 0:
        return None, evidence
    return (
        f"Of {n_peers} students with your last-term modules, {round(100 * took / n_peers)}% took it next "
        f"and {round(100 * passed / took)}% of them passed.",
        evidence,
    )


def _track(fs: FeatureSet, student_row: int, module_row: int) -> tuple[str | None, dict[str, Any]]:
    track_row = int(fs.module_info["track_row"].to_numpy()[module_row])
    if track_row < 0:
        return None, {}
    track = TRACKS[track_row]
    credits = float(fs.module_info["credits"].to_numpy()[module_row])
    deficit = float(fs.track_deficit[student_row, track_row])
    earned = float(fs.track_credits[student_row, track_row])
    target = float(fs.track_targets[student_row, track_row])
    evidence = {"track": track, "track_deficit": round(deficit, 2), "track_credits": round(earned, 2)}
    if target <= 0:
        return None, evidence
    if earned == 0:
        return f"Your plan has no {track} module yet.", evidence
    if deficit > 0:
        return (
            f"Adds {credits:g} {track} credits toward your program's target ({deficit:g} credits short).",
            evidence,
        )
    return None, evidence


def _unlocks(fs: FeatureSet, student_row: int, module_row: int) -> tuple[str | None, dict[str, Any]]:
    table = fs.prerequisites
    dependents = np.unique(table.loc[table["requires_row"] == module_row, "module_row"].to_numpy(np.int64))
    passed = set(fs.passed[student_row].indices.tolist())
    dependents = np.array([d for d in dependents.tolist() if d not in passed][:3], dtype=np.int64)
    if len(dependents) == 0:
        return None, {}
    titles = fs.module_info["title"].to_numpy(dtype=object)
    names = [str(titles[d]) if isinstance(titles[d], str) else fs.modules.id(int(d)) for d in dependents]
    return f"It opens the way to {_join(names)}.", {"unlocks": [fs.modules.id(int(d)) for d in dependents]}


def _popularity(fs: FeatureSet, student_row: int, module_row: int) -> tuple[str | None, dict[str, Any]]:
    n_programs_plus_none, n_stages = fs.popularity.shape[:2]
    if n_stages == 0:
        return None, {}
    program = int(fs.student_info["program_row"].to_numpy()[student_row])
    stage = min(int(fs.student_info["stage"].to_numpy()[student_row]), n_stages - 1)
    share = float(fs.popularity[program if program >= 0 else n_programs_plus_none - 1, stage, module_row])
    evidence = {"program_stage_share": round(share, 4)}
    if round(100 * share) < 1:
        return None, evidence
    who = "students of your program" if program >= 0 else "students without a program"
    return f"{round(100 * share)}% of {who} took it at your stage.", evidence


def reference_explanations(
    model: Any, lists: RankedLists, context: TermContext, occupation: int | None
) -> list[list[Explanation]]:
    """explain_lists, one item at a time."""
    fs: FeatureSet = model.fs_
    grades, fails = model.components_["risk"].predict(fs, lists.student_rows, lists.module_rows)
    peers = model.components_["sequence"].evidence_batch(lists.student_rows, lists.module_rows)
    out: list[list[Explanation]] = []
    for i, student_row in enumerate(np.asarray(lists.student_rows, np.int64).tolist()):
        explanations: list[Explanation] = []
        for j, module_row in enumerate(lists.module_rows[i].tolist()):
            if module_row < 0:
                continue
            contributions = {
                name: float(lists.contributions[i, j, c]) for c, name in enumerate(lists.component_names)
            }
            grade = float(grades[i, j]) if np.isfinite(grades[i, j]) else None
            fail = float(fails[i, j]) if np.isfinite(fails[i, j]) else None
            level = risk_level(fail, model.risk_levels)
            candidates: list[tuple[float, str]] = []
            evidence: dict[str, Any] = {}
            comp, builds, for_occupations, comp_evidence = _competency(
                model, student_row, module_row, occupation
            )
            evidence.update(comp_evidence)
            if comp:
                candidates.append((contributions.get("competency_gap", 0.0) + 0.5, comp))
            peer, peer_evidence = _peer(
                int(peers.n_peers[i]), int(peers.took_next[i, j]), int(peers.passed_next[i, j])
            )
            evidence.update(peer_evidence)
            if peer:
                candidates.append((contributions.get("sequence", 0.0) + 1.0, peer))
            track, track_evidence = _track(fs, student_row, module_row)
            evidence.update(track_evidence)
            if track:
                candidates.append((contributions.get("track_balance", 0.0) + 0.4, track))
            if fail is not None:
                chance = f"{round(100 * fail)}% chance of failing"
                risk = (
                    f"Your expected grade is about {round(grade)} ({level} risk: {chance})."
                    if grade is not None
                    else f"{level.capitalize()} risk for you: {chance}."
                )
                candidates.append((1.5 if level == "high" else 0.1, risk))
            unlock, unlock_evidence = _unlocks(fs, student_row, module_row)
            evidence.update(unlock_evidence)
            if unlock:
                candidates.append((0.05, unlock))
            popular, popular_evidence = _popularity(fs, student_row, module_row)
            evidence.update(popular_evidence)
            if popular:
                candidates.append(
                    (contributions.get("popularity", 0.0) + contributions.get("cold_start", 0.0), popular)
                )
            candidates.sort(key=lambda item: -item[0])
            reasons = [text for _, text in candidates[:MAX_REASONS]]
            if len(reasons) < MIN_REASONS:
                term = f" in {context.target_term}" if context.target_term else ""
                reasons.append(f"It is offered{term} and you meet its prerequisites.")
            if len(reasons) < MIN_REASONS:
                reasons.append("You have not taken it yet.")
            track_row = int(fs.module_info["track_row"].to_numpy()[module_row])
            explanations.append(
                Explanation(
                    module_id=fs.modules.id(module_row),
                    score=float(lists.scores[i, j]),
                    contributions=contributions,
                    reasons=reasons,
                    expected_grade=grade,
                    fail_probability=fail,
                    risk_level=level,
                    track=TRACKS[track_row] if track_row >= 0 else None,
                    builds=builds,
                    for_occupations=for_occupations,
                    evidence=evidence,
                )
            )
        out.append(explanations)
    return out
