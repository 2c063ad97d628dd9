"""Run the line: command line, pipeline, decisions, defect log, service and reports."""

__version__ = "0.1.0"
