"""Tests of router.requestlog and the `rightsize logs` commands."""
