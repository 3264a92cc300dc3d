"""Imitation from recorded demonstrations: visual encoders pretrained in-domain (DynaMo), policies on them."""
