"""Evaluation methods, named as their sources name them (AlpacaEval, Chatbot Arena); pure computation."""
