"""The one exception type of the data pipeline.

Every bad-input error says three things: which file, what is wrong, and how to fix it, so a user
never has to read the code to recover. It subclasses ValueError so callers that already catch
RecBole's ValueErrors keep working.
"""


class DataError(ValueError):
    """Bad or missing input data; the message names the file, the problem and the fix."""

    def __init__(self, path, problem, fix):
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.path}: {problem}\n  fix: {fix}")
