"""Analytics (数据分析): one append-only store of what happens to a customer, and the reports read
from it (funnels, cohorts, reinvestment, CAC and ROI, experiments, advisor and group figures) on an
analytical engine: DuckDB in-process, ClickHouse for firms that outgrow one machine."""
