"""Rendering results: the terminal table, the HTML report and its plots, number formatting, JSON conversion.

Reads results only. May import: result types (inspect, audit results and registry), inputs/ (side names).
Never runtime/, model/, ray/.
"""
