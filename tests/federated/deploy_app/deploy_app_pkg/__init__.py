"""Tiny Flower App (Message API) used to smoke-test a real local Deployment Engine."""
