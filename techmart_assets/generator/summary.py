"""What a generation run produced: the figures written to _generation.json and printed as a report."""

from __future__ import annotations

from dataclasses import asdict, dataclass

REVENUE_BASIS = (
    "sum of total_amount over the clean transaction rows: every status and the fraud rows "
    "included; dirty rows and repeated copies left out"
)


@dataclass
class GenerationSummary:
    """Figures of one run. Counts of rows exclude CSV header lines."""

    config: dict
    start: str
    end: str
    days: int
    rows_written: dict[str, int]  # per source, dirty rows included
    files_written: dict[str, int]  # per source (labels.csv and _generation.json not counted)
    transactions: int  # distinct transactions generated, each counted once
    clean_transactions: int  # the rows total_revenue sums over
    total_revenue: float  # MAD, see REVENUE_BASIS
    mean_basket: float  # total_revenue / clean_transactions
    fraud_scenarios: dict[str, int]  # per fraud kind
    fraud_transactions: dict[str, int]  # labelled transactions per fraud kind
    dirty_rows: dict[str, dict[str, int]]  # labelled rows per source and dirty kind
    labels: int  # rows of labels.csv

    def to_dict(self) -> dict:
        return {**asdict(self), "revenue_basis": REVENUE_BASIS}

    def report(self, out: str) -> str:
        def n(x: float) -> str:
            return f"{x:,}"

        files = ", ".join(f"{s} {n(c)}" for s, c in self.files_written.items())
        lines = [
            f"TechMart raw data written to {out} (seed {self.config['seed']})",
            f"  date range          {self.start} .. {self.end} ({n(self.days)} days)",
            "  rows written        " + ", ".join(f"{s} {n(c)}" for s, c in self.rows_written.items()),
            f"  files written       {n(sum(self.files_written.values()))} ({files}), "
            "plus labels.csv and _generation.json",
            f"  transactions        {n(self.transactions)} generated, "
            f"{n(self.clean_transactions)} clean rows",
            f"  total revenue       {self.total_revenue:,.2f} MAD ({REVENUE_BASIS})",
            f"  mean basket         {self.mean_basket:,.2f} MAD",
            "  fraud injected      "
            + ", ".join(
                f"{k} {n(self.fraud_scenarios[k])} ({n(self.fraud_transactions[k])} tx)"
                for k in self.fraud_scenarios
            ),
        ]
        for source, kinds in self.dirty_rows.items():
            lines.append(f"  dirty {source:<14}" + ", ".join(f"{k} {n(c)}" for k, c in kinds.items()))
        lines.append(f"  labels              {n(self.labels)} rows in labels.csv")
        return "\n".join(lines)
