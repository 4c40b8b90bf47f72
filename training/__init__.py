"""Training, evaluation and the ``emotion`` command-line tool."""
