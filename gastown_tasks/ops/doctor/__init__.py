"""`doctor`: what is wrong with a town's Dolt setup, and the fixes that are always safe."""
