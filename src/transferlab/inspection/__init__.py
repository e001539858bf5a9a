"""Looking inside networks and datasets: architecture tables, ImageNet predictions, activation maps and
dataset summaries (the seeds' section-1 questions and report ``004`` section 2.1)."""
