"""The results tables as plain text, shared by the CLI and the page's batch view: the per-lane
table (median and spread of every metric the records declare for it), the agreement and quality
columns, and the notes printed under them."""

from __future__ import annotations

from collections.abc import Sequence

from playground.engine import answer_quality, stats
from playground.engine.records import RunRecord, by_lane, lane_figures, metric_fields


def format_table(records: list[RunRecord]) -> str:
    """Median and spread (min-max) per lane of every metric declared for the CLI (``Metric.cli``);
    the headline's speed relative to the first lane's median."""
    lanes = by_lane(records)
    shown = [(f.name, m) for f, m in metric_fields(type(records[0]) if records else None) if m.cli]
    once = lane_figures()
    header = ["backend", "device", "precision", "runs"]
    for _, metric in shown:
        header += [f"{metric.cli} (min-max)", "vs first"] if metric.headline else [metric.cli or ""]
    header += ["agree %", "1st diff", "sim", "note"]
    rows = [header]
    first: dict[str, float] = {}  # the headline's median of the first lane that has one
    for (backend, device, precision), group in lanes.items():
        headline = next((name for name, metric in shown if metric.headline), "")
        good = [r for r in group if r.ok and (not headline or getattr(r, headline))]
        errors = [r.error for r in group if not r.ok]
        row = [backend, device or "-", precision or "-", str(len(good))]
        for name, metric in shown:
            measured = group if name in once else good  # load figures count even when runs failed
            values = [getattr(r, name) * metric.cli_scale for r in measured if getattr(r, name) is not None]
            digits = metric.cli_digits if metric.cli_digits is not None else (metric.digits or 0)
            median = stats.median(values)
            if not metric.headline:
                row.append(stats.fmt(median, digits))
                continue
            rates = [value for value in values if value]
            rate = stats.median(rates)
            if rate and name not in first:
                first[name] = rate
            spread = "-"
            if rates:
                low, high = stats.fmt(min(rates), digits), stats.fmt(max(rates), digits)
                spread = f"{stats.fmt(rate, digits)} ({low}-{high})"
            ratio = f"{rate / first[name]:.2f}x" if rate and first.get(name) else "-"
            row += [spread, ratio]
        note = (
            errors[0].splitlines()[0][:70]
            if errors
            else (group[0].device_note or ("stopped" if any(r.stopped for r in group) else ""))
        )
        agree, first_diff, similarity, flag = agreement_cells(good or [r for r in group if r.ok])
        row += [agree, first_diff, similarity,
                "; ".join(filter(None, [flag, host_note(good), note, perplexity_note(good)]))]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def perplexity_note(records: list[RunRecord]) -> str:
    """Why a lane has no perplexity (its ppl cell shows "-"), when quality was asked."""
    missing = [r.perplexity_note for r in records if r.perplexity is None and r.perplexity_note]
    return f"no perplexity: {missing[0]}" if missing else ""


def host_note(records: list[RunRecord]) -> str:
    """Say when a VM's host took CPU time from runs: their figures understate the runtime."""
    contended = [r for r in records if r.contended_host]
    if not contended:
        return ""
    worst = max(r.host_steal_percent or 0.0 for r in contended)
    return f"shared host: {len(contended)}/{len(records)} runs lost up to {worst:.0f} % of the CPU to steal"


def agreement_cells(records: list[RunRecord]) -> tuple[str, str, str, str]:
    """(agree %, 1st diff, sim, flag note) over a lane's runs: medians; "ref" for the reference,
    a trailing "!" and a FLAGGED note when any run's answer was flagged."""
    if not records or not any(r.reference for r in records):
        return "-", "-", "-", ""
    if all(r.agreement_note.startswith("reference") for r in records):
        broken = [r.agreement_note for r in records if r.agreement_flag]
        return "ref", "-", "-", (f"FLAGGED {broken[0]}" if broken else "")
    pct = stats.median([r.agreement_pct for r in records if r.agreement_pct is not None])
    flagged = [r for r in records if r.agreement_flag]
    agree = stats.fmt(pct) + (" !" if flagged else "")
    divergences = [r.first_divergence for r in records if r.first_divergence is not None]
    first_diff = "none" if pct is not None and not divergences else stats.fmt(stats.median(divergences), 0)
    similarity = stats.fmt(stats.median(r.text_similarity for r in records), 2)
    flag = f"FLAGGED ({len(flagged)}/{len(records)} runs): {flagged[0].agreement_note}" if flagged else ""
    return agree, first_diff, similarity, flag


def agreement_legend(records: list[RunRecord]) -> str:
    """One line under the table: what the answers were compared with, and its limits."""
    references = sorted({r.reference for r in records if r.reference})
    if not references:
        return ""
    legend = (
        f"answers compared with {', '.join(references)}: agree % = greedy token agreement, "
        "1st diff = first differing token, sim = word similarity (0-1), ! = flagged as likely broken"
    )
    notes = sorted({r.agreement_note.split("; ")[-1] for r in records if "sampling" in r.agreement_note})
    return legend + ("\n" + notes[0] if notes else "")


def format_quality(qualities: list[answer_quality.LaneQuality], prompts: Sequence[str]) -> str:
    """Per lane, quality over the prompts (``engine.answer_quality``): the mean over prompts of
    each prompt's median agreement and similarity, the worst prompt, the flagged ones, and the
    prompts without a figure and why."""
    references = sorted({q.name for q in qualities if q.reference})
    header = ["lane", "mean agree %", "mean sim", "worst prompt", "flagged", "not computed"]
    rows = [header]
    why: list[str] = []
    for quality in qualities:
        if quality.reference:
            rows.append([quality.name, "ref", "-", "-", _count(quality.flagged, quality), "-"])
            continue
        worst = quality.worst
        worst_cell = "-" if worst is None else f"#{worst.prompt_index + 1} ({worst.agreement_pct:.1f} %)"
        missing = quality.not_computed
        rows.append([quality.name, stats.fmt(quality.mean_agreement_pct),
                     stats.fmt(quality.mean_similarity, 2), worst_cell, _count(quality.flagged, quality),
                     str(len(missing)) if missing else "-"])
        reasons: dict[str, list[int]] = {}
        for prompt in missing:
            reasons.setdefault(prompt.note, []).append(prompt.prompt_index + 1)
        why += [f"  {quality.name}: no agreement on prompt(s) {', '.join(map(str, numbers))}: {reason}"
                for reason, numbers in reasons.items()]
        if quality.reference_prompts:
            why.append(f"  {quality.name}: was the reference on prompt(s) "
                       + ", ".join(str(p.prompt_index + 1) for p in quality.reference_prompts)
                       + " (its reference failed there)")
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"quality over {len(prompts)} prompts, against {', '.join(references) or 'the reference lane'} "
             "(per prompt the median of its runs, then the mean over the prompts):"]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
              for row in rows]
    lines.insert(2, "  ".join("-" * width for width in widths))
    worst = sorted({q.worst.prompt_index for q in qualities if q.worst is not None and not q.reference})
    lines += [f"  #{index + 1}: {_short(prompts[index])}" for index in worst if index < len(prompts)]
    return "\n".join(lines + why)


def _count(flagged: list, quality: answer_quality.LaneQuality) -> str:
    return f"{len(flagged)}/{len(quality.prompts)}"


def _short(text: str, limit: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
