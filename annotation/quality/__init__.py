"""Campaign quality: gold records (known answers served to every annotator), annotators' standing
(paused by a policy or an admin, excluded from exports), per-annotator quality figures, the review
queue and reviewers' verdicts. Services and selectors of the annotation app, grouped here."""
