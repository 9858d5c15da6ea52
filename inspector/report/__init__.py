"""Rendering results: the terminal table, the HTML report and its plots, number formatting, JSON conversion.

Reads results only: never runtime/, model/, inputs/ loaders, ray/.
"""
