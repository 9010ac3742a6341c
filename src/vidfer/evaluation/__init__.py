"""Whole-video scoring, metrics, and the evaluation of trained runs."""
