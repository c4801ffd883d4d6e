"""Job handlers of the annotation app (import, export) — registered in AnnotationConfig.ready."""
