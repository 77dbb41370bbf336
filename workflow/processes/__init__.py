"""Processes: BPMN definitions, instances, human tasks, timers and messages."""
