"""The lab: every close scenario run for real, captured, drawn and judged.

scenario (data) -> runner -> processes + capture -> timeline -> verdict -> renderers
"""
