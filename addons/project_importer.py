"""Training-data importer: Rasa's file importer, aware of retrieval intents in stories.

Why: Rasa adds retrieval intents (our ``faq``) to the domain from the NLU data. Listing
``faq`` in the domain as well makes Rasa warn of a duplicate intent, while leaving it out
makes the story reader warn that rules use an intent "not in the domain". This importer
gives the story reader the retrieval intents too, so the project validates with no warnings
and ``faq`` is declared in exactly one place: the NLU data.
"""

from __future__ import annotations

from typing import Optional

from rasa.shared.core.domain import Domain
from rasa.shared.core.training_data.structures import StoryGraph
from rasa.shared.importers import utils
from rasa.shared.importers.rasa import RasaFileImporter


class ProjectImporter(RasaFileImporter):
    def _domain_for_stories(self) -> Domain:
        retrieval = sorted(self.get_nlu_data().retrieval_intents)
        return self.get_domain().merge(Domain.from_dict({"intents": retrieval}))

    def get_stories(self, exclusion_percentage: Optional[int] = None) -> StoryGraph:
        return utils.story_graph_from_paths(
            self._story_files, self._domain_for_stories(), exclusion_percentage
        )

    def get_conversation_tests(self) -> StoryGraph:
        return utils.story_graph_from_paths(
            self._conversation_test_files, self._domain_for_stories()
        )
