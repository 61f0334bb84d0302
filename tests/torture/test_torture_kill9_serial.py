"""Torture 1, one push at a time (max_in_flight 1): a kill interrupts at
most one attempt, so the duplicate pushes (a renewal ID pushed twice) are
at most the kills. The scenario itself is in test_torture_kill9.py."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_torture_kill9 import Kill9Scenario, harness  # noqa: E402


class Kill9Serial(Kill9Scenario):

    def test_one_push_at_a_time_duplicates_at_most_kills(self):
        dups, kills = self.run_kills(1)
        self.assertLessEqual(dups, kills, "%d duplicate pushes for %d "
                             "kills" % (dups, kills))


if __name__ == "__main__":
    harness.main()
