"""The embedded default world: a knowledge base, tasks for the ten use cases, a gold grader
and a simulated labeler, small enough that every step of the recipe is learnable on a CPU."""
