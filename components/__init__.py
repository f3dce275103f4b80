"""Pulumi components, one per module; each turns a plan from `plan/` into resources."""
