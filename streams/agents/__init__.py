"""Faust agents, one per file: validate, score, index, alert (observe/detect/notify), labels."""
