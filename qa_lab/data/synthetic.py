"""Generated SQuAD-format data: offline, seeded, any size, learnable but not trivial.

Each paragraph describes one fictional subject (a person, company, town, river or treaty) through many
facts, with at least two values of every answer type (two years, two towns, two people, two colours...),
so a question can only be answered by reading it, not by spotting "the year". Sentences and questions
come in several paraphrases that do not always share the sentence's words. Names are built from
syllables, and train and validation use disjoint name sets (each syllable-built stem belongs to one split
by a stable hash), so validation asks about entities never seen in training. A share of paragraphs is padded
with background sentences beyond one 384-word-piece window, with part of the facts after the padding.
Optionally some questions are unanswerable (SQuAD v2): they ask about a fact the paragraph leaves out, or
about another subject of the same kind.
"""

from __future__ import annotations

import random
import string
import zlib
from dataclasses import dataclass

import pandas as pd

from qa_lab.core.errors import ConfigError

SPLITS = ("train", "validation")
QUESTIONS_PER_PARAGRAPH = (3, 6)  # inclusive range; several questions share one context, as in SQuAD
OPTIONAL_FACT_PROBABILITY = 0.5  # optional facts a paragraph leaves out supply unanswerable questions
MISSING_FACT_SHARE = 0.5  # of unanswerable questions, those about an omitted fact (else about another subject)
FILLER_SENTENCES = (0, 2)  # inclusive range of background sentences in an ordinary paragraph

# --- names: syllables -> words -> names of each kind --------------------------------------------------
ONSETS = ("b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "j", "k", "kr", "l", "m", "n", "p", "r", "s",
          "sh", "st", "t", "th", "v", "w", "z")
VOWELS = ("a", "e", "i", "o", "u", "ae", "ei", "ou", "ia")
CODAS = ("", "", "", "", "n", "r", "l", "s", "th", "m", "k", "nd", "st")
WORD_SYLLABLES = (2, 2)  # inclusive range of syllables in a first name, surname or other stem
PLACE_SYLLABLES = (1, 2)  # the same for a place's stem, which takes a suffix from PLACE_SUFFIXES
PLACE_SUFFIXES = ("holm", "ford", "wick", "bury", "stead", "haven", "mere", "dale", "field", "moor", "gate", "by")
ORG_SUFFIXES = ("Works", "Mills", "Foundry", "Industries", "Trading", "Brothers", "Textiles", "Shipping")
PRIZE_SUFFIXES = ("Medal", "Prize", "Award")
NAME_FORMS: dict[str, tuple[tuple[int, int], tuple[str, ...]]] = {  # kind -> (stem syllables, forms; {} is a stem)
    "person": (WORD_SYLLABLES, ("{} {}",)),
    "place": (PLACE_SYLLABLES, tuple("{}" + suffix for suffix in PLACE_SUFFIXES)),
    "treaty": (PLACE_SYLLABLES, tuple("Treaty of {}" + suffix for suffix in PLACE_SUFFIXES)),
    "org": (WORD_SYLLABLES, tuple("{} " + suffix for suffix in ORG_SUFFIXES)),
    "prize": (WORD_SYLLABLES, tuple("{} " + suffix for suffix in PRIZE_SUFFIXES)),
    "river": (WORD_SYLLABLES, ("{} River",)),
    "mountain": (WORD_SYLLABLES, ("Mount {}",)),
}

# --- vocabulary shared by both splits (consonant-initial where the templates put "a" before it) -------
COLOURS = ("red", "blue", "green", "yellow", "violet", "grey", "white", "black", "crimson", "teal", "silver",
           "golden", "brown", "pink", "purple", "scarlet", "turquoise", "maroon")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
VOCABULARY: dict[str, tuple[str, ...]] = {
    "colour": COLOURS,
    "month": MONTHS,
    "field": ("astronomy", "botany", "chemistry", "geology", "music", "painting", "law", "medicine",
              "mathematics", "architecture", "zoology", "sculpture", "philosophy", "economics", "navigation"),
    "product": ("bicycles", "glass bottles", "wool blankets", "clocks", "fishing nets", "ceramic tiles",
                "paper lamps", "copper pipes", "leather boots", "printing presses", "sewing machines", "pianos",
                "telescopes", "tinned fish", "ropes", "candles", "saddles", "barrels"),
    "job": ("baker", "carpenter", "sailor", "teacher", "miller", "printer", "blacksmith", "weaver", "merchant",
            "clerk", "potter", "tailor", "fisherman", "shoemaker", "soldier", "surveyor"),
    "symbol": ("tower", "ship", "star", "wheel", "fox", "key", "bell", "horse", "tree", "crown", "fish", "bridge",
               "lion", "swan"),
    "reason": ("because of a long drought", "after a dispute over taxes", "because the money had run out",
               "after a series of floods", "to save money", "because of an outbreak of cholera",
               "after a fire in the old quarter", "because trade had declined", "to avoid heavy taxes",
               "because the harbour had silted up", "on the orders of the governor",
               "after a quarrel between the owners", "because the old buildings were unsafe",
               "because demand had fallen", "to be closer to the railway", "after a strike that lasted a year"),
    "personal_reason": ("to study law", "to look for work", "to join an uncle's business", "to take up a teaching post",
                        "because the family farm had failed", "to escape a cholera outbreak", "to be near the sea",
                        "after a quarrel with the family", "to train as a printer", "because of poor health",
                        "to care for an ailing mother", "after losing a lawsuit"),
    "flood_reason": ("after weeks of heavy rain", "when a dam burst upstream", "after a sudden thaw",
                     "when ice blocked the channel", "after a storm surge from the sea"),
    "growth_reason": ("when the railway arrived", "after silver was found nearby", "when a new bridge opened",
                      "after the wool trade boomed", "when the university moved there"),
}
YEARS = (1620, 1990)
LAST_DAY = 28  # every month has it
COUNTS: dict[str, tuple[int, int]] = {  # inclusive ranges, written with digits and thousands separators
    "few": (2, 19),
    "age": (14, 29),
    "percent": (5, 60),
    "dozens": (20, 400),
    "many": (100, 9_999),
    "thousands": (1_000, 250_000),
}
MEASURES: dict[str, tuple[str, int, int]] = {  # unit and inclusive range; the unit is part of the answer
    "km": ("kilometres", 12, 950),
    "area": ("square kilometres", 4, 300),
    "elevation": ("metres", 40, 2_400),
    "depth": ("metres", 2, 40),
    "width": ("metres", 30, 900),
}
PRONOUNS = (
    {"he": "he", "He": "He", "him": "him", "his": "his", "His": "His"},
    {"he": "she", "He": "She", "him": "her", "his": "her", "His": "Her"},
)


@dataclass(frozen=True)
class Kind:
    """One kind of subject: the kinds of its facts, how sentences state them and how questions ask for them.

    `core` sentences are always stated (the first introduces the subject and comes first); each `optional`
    one is stated in some paragraphs only. Each entry is a tuple of paraphrases stating the same facts.
    """

    subject: str
    facts: dict[str, str]
    core: tuple[tuple[str, ...], ...]
    optional: tuple[tuple[str, ...], ...]
    questions: dict[str, tuple[str, ...]]


PERSON = Kind(
    subject="person",
    facts={
        "birth_year": "year", "birth_city": "place", "siblings": "few", "move_age": "age", "study_city": "place",
        "move_reason": "personal_reason", "field": "field", "mentor": "person", "mentor_city": "place",
        "mentor_year": "year", "employer": "org", "taught_field": "field", "apprentices": "dozens",
        "rival": "person", "rival_employer": "org", "rival_prize": "prize", "rival_prize_year": "year",
        "prize": "prize", "prize_year": "year", "books": "few", "book_year": "year", "retire_year": "year",
        "retire_reason": "reason", "coat_colour": "colour", "door_colour": "colour", "death_year": "year",
        "death_city": "place", "spouse": "person", "spouse_job": "job", "spouse_city": "place",
        "wedding_year": "year", "first_lecture": "date", "last_lecture": "date",
    },
    core=(
        ("{s} was born in {birth_city} in {birth_year}, the youngest of {siblings} children.",
         "Born in {birth_year} in the small town of {birth_city}, {s} was the youngest of {siblings} children.",
         "{s}, the youngest of {siblings} children, was born in {birth_year} in {birth_city}."),
        ("At the age of {move_age}, {he} moved to {study_city} {move_reason}.",
         "When {he} was {move_age}, {sn} left home for {study_city} {move_reason}."),
        ("{He} studied {field} under {mentor}, a teacher who had been born in {mentor_city} in {mentor_year}.",
         "{mentor}, born in {mentor_year} in {mentor_city}, taught {him} {field}.",
         "{His} teacher of {field} was {mentor}, a native of {mentor_city} born in {mentor_year}."),
        ("Later {he} worked for {employer}, where {he} taught {taught_field} to {apprentices} apprentices.",
         "{sn} spent most of {his} career at {employer}, teaching {taught_field} to {apprentices} apprentices."),
        ("{His} great rival was {rival} of {rival_employer}, who won the {rival_prize} in {rival_prize_year}.",
         "{sn} was often compared with {rival}, who worked for {rival_employer} and had won the {rival_prize} "
         "in {rival_prize_year}."),
        ("In {prize_year}, {sn} received the {prize}.",
         "{sn} was awarded the {prize} in {prize_year}.",
         "The {prize} went to {sn} in {prize_year}."),
        ("{He} wrote {books} books, the best known of which appeared in {book_year}.",
         "Over {his} life {sn} published {books} books; the most famous came out in {book_year}."),
        ("{He} retired in {retire_year} {retire_reason}.",
         "In {retire_year}, {sn} stopped working {retire_reason}."),
        ("{He} always wore a {coat_colour} coat, and the door of {his} house was painted {door_colour}.",
         "Neighbours remembered {his} {coat_colour} coat and the {door_colour} door of {his} house."),
    ),
    optional=(
        ("{sn} died in {death_city} in {death_year}.",
         "{He} died in {death_year} in {death_city}."),
        ("In {wedding_year}, {he} married {spouse}, a {spouse_job} from {spouse_city}.",
         "{He} married {spouse}, a {spouse_job} from {spouse_city}, in {wedding_year}."),
        ("{His} first public lecture was given on {first_lecture}, and {his} last on {last_lecture}.",
         "{sn} lectured in public from {first_lecture} until {last_lecture}."),
    ),
    questions={
        "birth_year": ("When was {s} born?", "In what year was {s} born?", "In which year did {s} come into the world?",
                       "What is the birth year of {s}?"),
        "birth_city": ("Where was {s} born?", "What is the birthplace of {s}?", "In which town was {s} born?",
                       "Which town does {s} come from?"),
        "siblings": ("{s} was the youngest of how many children?", "How many children were there in the family of {s}?"),
        "move_age": ("How old was {s} when {he} moved to {study_city}?", "At what age did {s} go to {study_city}?"),
        "study_city": ("Where did {s} move at the age of {move_age}?", "To which town did {s} move as a young person?",
                       "Which town did {s} leave home for?"),
        "move_reason": ("Why did {s} move to {study_city}?", "What was the reason {s} went to {study_city}?",
                        "For what reason did {s} leave home?"),
        "field": ("What did {s} study under {mentor}?", "Which subject did {mentor} teach {s}?",
                  "What subject did {s} learn from {his} teacher?"),
        "mentor": ("Who taught {s} {field}?", "Under whom did {s} study?", "Who was the teacher of {s}?"),
        "mentor_city": ("Where was {mentor} born?", "What is the home town of the teacher of {s}?",
                        "In which town was {mentor} born?"),
        "mentor_year": ("When was {mentor} born?", "In what year was the teacher of {s} born?"),
        "employer": ("For which company did {s} work?", "Which firm employed {s} for most of {his} career?",
                     "Where did {s} teach {taught_field}?"),
        "taught_field": ("What did {s} teach at {employer}?", "Which subject did {s} teach to apprentices?"),
        "apprentices": ("How many apprentices did {s} teach?", "How many apprentices were trained by {s}?"),
        "rival": ("Who was the great rival of {s}?", "Who was {s} often compared with?",
                  "Which person was the rival of {s}?"),
        "rival_employer": ("Which company did {rival} work for?", "Where did the rival of {s} work?"),
        "rival_prize": ("Which prize did {rival} win?", "What award had the rival of {s} won?"),
        "rival_prize_year": ("When did {rival} win the {rival_prize}?",
                             "In what year was the {rival_prize} won by the rival of {s}?"),
        "prize": ("Which prize did {s} receive?", "What award was given to {s} in {prize_year}?",
                  "Which honour did {s} win?"),
        "prize_year": ("When did {s} receive the {prize}?", "In which year was {s} awarded the {prize}?",
                       "When did {s} win {his} prize?"),
        "books": ("How many books did {s} write?", "How many books did {s} publish?"),
        "book_year": ("When did the most famous book by {s} appear?",
                      "In what year was the best-known book of {s} published?"),
        "retire_year": ("When did {s} retire?", "In which year did {s} stop working?"),
        "retire_reason": ("Why did {s} retire?", "What made {s} stop working in {retire_year}?"),
        "coat_colour": ("What colour was the coat of {s}?", "What colour coat did {s} wear?"),
        "door_colour": ("What colour was the door of the house of {s}?", "How was the front door of {s} painted?"),
        "death_year": ("When did {s} die?", "In what year did {s} die?"),
        "death_city": ("Where did {s} die?", "In which town did {s} die?"),
        "spouse": ("Who did {s} marry?", "Who was the spouse of {s}?"),
        "wedding_year": ("When did {s} marry?", "In which year did {s} get married?"),
        "spouse_city": ("Where did the spouse of {s} come from?", "Which town was {spouse} from?"),
        "first_lecture": ("When did {s} give {his} first public lecture?",
                          "On what date did {s} first lecture in public?"),
        "last_lecture": ("When did {s} give {his} last public lecture?",
                         "On what date did {s} lecture in public for the last time?"),
    },
)

COMPANY = Kind(
    subject="org",
    facts={
        "founded_year": "year", "founder": "person", "founder_job": "job", "founder_city": "place",
        "hq_city": "place", "product": "product", "factory_city": "place", "factory_year": "year",
        "factory_reason": "reason", "employees": "many", "shops": "few", "ceo": "person", "ceo_year": "year",
        "ceo_previous": "org", "bought_org": "org", "bought_year": "year", "price": "dozens",
        "old_product": "product", "stop_year": "year", "stop_reason": "reason", "symbol": "symbol",
        "logo_colour": "colour", "logo_background": "colour", "exchange_city": "place", "listing_year": "year",
        "customer": "org", "customer_share": "percent", "van_colour": "colour",
    },
    core=(
        ("{s} was founded in {founded_year} by {founder}, a former {founder_job} from {founder_city}.",
         "{founder}, a former {founder_job} from {founder_city}, started {s} in {founded_year}.",
         "The history of {s} goes back to {founded_year}, when {founder}, once a {founder_job} in {founder_city}, "
         "opened a small workshop."),
        ("Its head office is in {hq_city}, but most of its {product} are made in {factory_city}, where production "
         "moved in {factory_year} {factory_reason}.",
         "The company keeps its head office in {hq_city}; its {product} have been made in {factory_city} since "
         "{factory_year}, when production moved there {factory_reason}."),
        ("{s} employs {employees} people and runs {shops} shops.",
         "Today the company has {employees} employees and {shops} shops across the region."),
        ("{ceo} has led the company since {ceo_year}, after many years at {ceo_previous}.",
         "Since {ceo_year} the firm has been run by {ceo}, who came from {ceo_previous}."),
        ("In {bought_year}, {s} bought {bought_org} for {price} million crowns.",
         "The company took over {bought_org} in {bought_year}, paying {price} million crowns."),
        ("It stopped making {old_product} in {stop_year} {stop_reason}.",
         "The firm gave up the production of {old_product} in {stop_year} {stop_reason}."),
        ("The logo of {s} is a {logo_colour} {symbol} on a {logo_background} background.",
         "Its logo shows a {logo_colour} {symbol} on a {logo_background} ground."),
    ),
    optional=(
        ("Shares of {s} have been traded in {exchange_city} since {listing_year}.",
         "Since {listing_year}, shares of the company have been traded in {exchange_city}."),
        ("Its largest customer is {customer}, which buys {customer_share} percent of its output.",
         "About {customer_share} percent of its output goes to {customer}, its largest customer."),
        ("Its delivery vans are painted {van_colour}.",
         "The delivery vans of the company are {van_colour}."),
    ),
    questions={
        "founded_year": ("When was {s} founded?", "In what year was {s} established?",
                         "When did {founder} start the company?"),
        "founder": ("Who founded {s}?", "Who started {s}?", "Who was the founder of {s}?",
                    "Which former {founder_job} established {s}?"),
        "founder_city": ("Where did {founder} come from?", "Which town was the founder of {s} from?"),
        "hq_city": ("Where is {s} headquartered?", "In which city is the head office of {s}?",
                    "Where are the headquarters of {s}?"),
        "product": ("What does {s} make?", "What are the main products of {s}?", "What is produced in {factory_city}?"),
        "factory_city": ("Where does {s} make its {product}?", "In which town are the {product} of {s} produced?",
                         "Where is the factory of {s}?"),
        "factory_year": ("When did {s} move production to {factory_city}?",
                         "In which year did the production of {s} move?"),
        "factory_reason": ("Why did {s} move production to {factory_city}?",
                           "What was the reason for moving the production of {s}?"),
        "employees": ("How many people work for {s}?", "How many employees does {s} have?",
                      "How large is the workforce of {s}?"),
        "shops": ("How many shops does {s} run?", "How many shops does {s} have?"),
        "ceo": ("Who runs {s}?", "Who is the head of {s}?", "Who has led {s} since {ceo_year}?"),
        "ceo_year": ("Since when has {ceo} led {s}?", "When did {ceo} become head of {s}?"),
        "ceo_previous": ("Where did {ceo} work before joining {s}?", "Which company did {ceo} come from?"),
        "bought_org": ("Which company did {s} buy?", "What firm was taken over by {s}?",
                       "Which business did {s} acquire in {bought_year}?"),
        "bought_year": ("When did {s} buy {bought_org}?", "In which year was {bought_org} acquired?"),
        "price": ("How many million crowns did {s} pay for {bought_org}?",
                  "For how many million crowns was {bought_org} bought?"),
        "old_product": ("What did {s} stop making in {stop_year}?", "Which product did {s} give up?"),
        "stop_year": ("When did {s} stop making {old_product}?", "In what year did {s} give up {old_product}?"),
        "stop_reason": ("Why did {s} stop making {old_product}?", "Why did {s} give up {old_product}?"),
        "logo_colour": ("What colour is the {symbol} in the logo of {s}?", "What colour is the emblem of {s}?"),
        "logo_background": ("What is the background colour of the logo of {s}?",
                            "On what colour does the {symbol} of {s} stand?"),
        "exchange_city": ("Where are shares of {s} traded?", "In which city can one buy shares of {s}?"),
        "listing_year": ("Since when have shares of {s} been traded?", "When were shares of {s} first traded?"),
        "customer": ("Who is the largest customer of {s}?", "Which company buys the most from {s}?"),
        "customer_share": ("What percent of the output of {s} goes to its largest customer?",
                           "How many percent of its output does {s} sell to {customer}?"),
        "van_colour": ("What colour are the delivery vans of {s}?", "What colour does {s} paint its vans?"),
    },
)

TOWN = Kind(
    subject="place",
    facts={
        "founded_year": "year", "founder": "person", "founder_job": "job", "founder_city": "place",
        "river": "river", "main_river": "river", "distance": "km", "neighbour": "place", "population": "thousands",
        "area": "area",
        "mayor": "person", "mayor_year": "year", "symbol": "symbol", "flag_colour": "colour",
        "flag_background": "colour", "elevation": "elevation", "schools": "few", "port_year": "year",
        "port_reason": "reason", "growth_year": "year", "growth_reason": "growth_reason", "twin": "place",
        "twin_year": "year", "fair_month": "month", "market_month": "month", "patron": "person",
        "employer": "org", "employer_product": "product", "second_employer": "org", "second_product": "product",
    },
    core=(
        ("{s} was founded in {founded_year} by settlers led by {founder}, a {founder_job} from {founder_city}.",
         "Settlers from {founder_city}, led by a {founder_job} named {founder}, founded {s} in {founded_year}.",
         "{s} dates from {founded_year}, when {founder}, a {founder_job} from {founder_city}, settled there with "
         "a group of families."),
        ("It lies on the {river}, {distance} upstream from {neighbour}, where the river flows into the {main_river}.",
         "The town sits on the banks of the {river}, {distance} upstream from its meeting with the {main_river} at "
         "{neighbour}."),
        ("{s} has {population} inhabitants and covers an area of {area}.",
         "With {population} residents spread over {area}, it is the largest town in the valley."),
        ("The mayor, {mayor}, was elected in {mayor_year}.",
         "{mayor} has been mayor of {s} since {mayor_year}."),
        ("The town flag shows a {flag_colour} {symbol} on a {flag_background} field.",
         "On the flag of {s} is a {flag_colour} {symbol} on a {flag_background} field."),
        ("It lies {elevation} above sea level and has {schools} schools.",
         "The town, which has {schools} schools, sits {elevation} above sea level."),
        ("The old harbour closed in {port_year} {port_reason}.",
         "In {port_year}, the old harbour of {s} was closed {port_reason}."),
        ("{s} grew quickly from {growth_year} on, {growth_reason}.",
         "From {growth_year} the town grew quickly, {growth_reason}."),
        ("{s} has been twinned with {twin} since {twin_year}.",
         "Since {twin_year}, the town has been twinned with {twin}."),
    ),
    optional=(
        ("Each {fair_month} it holds a fair in honour of {patron}, and the market closes for the winter in "
         "{market_month}.",
         "The market closes for the winter in {market_month}; the fair in honour of {patron} is held every "
         "{fair_month}."),
        ("The largest employer in {s} is {employer}, a maker of {employer_product}, followed by {second_employer}, "
         "which makes {second_product}.",
         "{employer}, which makes {employer_product}, is the largest employer in the town; the second largest is "
         "{second_employer}, a maker of {second_product}."),
    ),
    questions={
        "founded_year": ("When was {s} founded?", "In what year did settlers found {s}?",
                         "Since which year has {s} existed?"),
        "founder": ("Who led the settlers who founded {s}?", "Who founded {s}?", "Which {founder_job} founded {s}?"),
        "founder_city": ("Where did the founders of {s} come from?", "From which town did the settlers of {s} come?"),
        "river": ("On which river does {s} lie?", "Which river flows past {s}?"),
        "main_river": ("Which river does the {river} flow into?", "Into which river does the river of {s} flow?"),
        "distance": ("How far is {s} from {neighbour}?", "What is the distance between {s} and {neighbour}?",
                     "How far upstream from {neighbour} is {s}?"),
        "neighbour": ("Which town lies downstream of {s}?", "Which town is {distance} downstream from {s}?"),
        "population": ("How many people live in {s}?", "What is the population of {s}?"),
        "area": ("How large is {s}?", "What area does {s} cover?"),
        "mayor": ("Who is the mayor of {s}?", "Who was elected mayor of {s} in {mayor_year}?",
                  "Who leads the town council of {s}?"),
        "mayor_year": ("When was {mayor} elected?", "Since when has {mayor} been mayor of {s}?"),
        "flag_colour": ("What colour is the {symbol} on the flag of {s}?", "What colour is the emblem on the flag of {s}?"),
        "flag_background": ("What is the background colour of the flag of {s}?",
                            "What colour is the field of the flag of {s}?"),
        "elevation": ("How high above sea level is {s}?", "At what elevation does {s} lie?", "What is the altitude of {s}?"),
        "schools": ("How many schools are there in {s}?", "How many schools does {s} have?"),
        "port_year": ("When did the old harbour of {s} close?", "In which year was the harbour of {s} shut?"),
        "port_reason": ("Why did the old harbour of {s} close?", "For what reason was the harbour of {s} shut?"),
        "growth_year": ("From which year did {s} grow quickly?", "When did {s} start to grow fast?"),
        "growth_reason": ("Why did {s} grow quickly?", "What made {s} grow from {growth_year} on?"),
        "twin": ("Which town is {s} twinned with?", "What is the twin town of {s}?"),
        "twin_year": ("Since when has {s} been twinned with {twin}?", "When did {s} become twinned with {twin}?"),
        "fair_month": ("In which month does {s} hold its fair?", "When is the fair of {s} held?"),
        "market_month": ("When does the market of {s} close for the winter?",
                         "In which month does the market of {s} close?"),
        "patron": ("In whose honour is the fair in {s} held?", "Who is honoured by the fair in {s}?"),
        "employer": ("What is the largest employer in {s}?", "Which company employs the most people in {s}?"),
        "employer_product": ("What does {employer} make?", "What does the largest employer in {s} produce?"),
        "second_employer": ("What is the second largest employer in {s}?",
                            "Which company comes after {employer} among the employers of {s}?"),
        "second_product": ("What does {second_employer} make?", "What does the second largest employer in {s} produce?"),
    },
)

RIVER = Kind(
    subject="river",
    facts={
        "length": "km", "source": "mountain", "mouth_city": "place", "mid_city": "place", "mid_mountain": "mountain",
        "bridge_year": "year", "tributaries": "few", "tributary": "river", "tributary_length": "km",
        "join_city": "place", "explorer": "person", "guide": "person", "mapped_year": "year", "canoe_days": "few",
        "flood_year": "year", "flood_reason": "flood_reason", "shipping_year": "year", "shipping_reason": "reason",
        "spring_colour": "colour", "summer_colour": "colour", "depth": "depth", "width": "width",
        "fish_species": "dozens", "ferry_city": "place", "ferry_year": "year",
    },
    core=(
        ("The {s} is {length} long; it rises on {source} and reaches the sea at {mouth_city}.",
         "Rising on {source}, the {s} runs for {length} before it reaches the sea at {mouth_city}.",
         "From its source on {source} to its mouth at {mouth_city}, the {s} is {length} long."),
        ("Along the way it passes {mid_city}, at the foot of {mid_mountain}, where a stone bridge was built in "
         "{bridge_year}.",
         "At {mid_city}, below {mid_mountain}, the river is crossed by a stone bridge dating from {bridge_year}."),
        ("The {s} has {tributaries} tributaries; the longest, the {tributary}, is {tributary_length} long and joins "
         "it near {join_city}.",
         "Of its {tributaries} tributaries the longest is the {tributary}, which runs for {tributary_length} and "
         "joins it near {join_city}."),
        ("The river was first mapped in {mapped_year} by {explorer}, who was guided by {guide} on a canoe journey "
         "of {canoe_days} days.",
         "{explorer} mapped the {s} in {mapped_year}, travelling {canoe_days} days by canoe with {guide} as guide."),
        ("It flooded badly in {flood_year} {flood_reason}.",
         "In {flood_year} the {s} burst its banks {flood_reason}."),
        ("Shipping on the river stopped in {shipping_year} {shipping_reason}.",
         "Boats stopped using the {s} in {shipping_year} {shipping_reason}."),
        ("In spring its water looks {spring_colour}, but by late summer it turns {summer_colour}.",
         "Its water is {spring_colour} in spring and {summer_colour} by late summer."),
        ("Near its mouth the channel is {depth} deep and {width} wide.",
         "Where it meets the sea, the {s} is {width} wide and {depth} deep."),
    ),
    optional=(
        ("The {s} is home to {fish_species} species of fish.",
         "No fewer than {fish_species} species of fish live in the {s}."),
        ("A ferry has crossed it at {ferry_city} since {ferry_year}.",
         "Since {ferry_year} a ferry has carried travellers across the {s} at {ferry_city}."),
    ),
    questions={
        "length": ("How long is the {s}?", "What is the length of the {s}?", "Over what distance does the {s} run?"),
        "source": ("Where does the {s} rise?", "On which mountain is the source of the {s}?",
                   "Where is the source of the {s}?"),
        "mouth_city": ("Where does the {s} reach the sea?", "At which town is the mouth of the {s}?",
                       "Which town stands at the mouth of the {s}?"),
        "mid_city": ("Where is the stone bridge over the {s}?", "At which town is the {s} crossed by a stone bridge?"),
        "mid_mountain": ("Which mountain rises above {mid_city}?", "At the foot of which mountain does {mid_city} lie?"),
        "bridge_year": ("When was the stone bridge at {mid_city} built?",
                        "In what year was the bridge over the {s} at {mid_city} built?"),
        "tributaries": ("How many tributaries does the {s} have?", "How many rivers flow into the {s}?"),
        "tributary": ("What is the longest tributary of the {s}?", "Which river is the largest tributary of the {s}?"),
        "tributary_length": ("How long is the {tributary}?", "What is the length of the longest tributary of the {s}?"),
        "join_city": ("Where does the {tributary} join the {s}?", "Near which town does the {tributary} flow into the {s}?"),
        "explorer": ("Who first mapped the {s}?", "Who was the first to map the {s}?",
                     "Who led the canoe journey that mapped the {s}?"),
        "guide": ("Who guided {explorer} on the {s}?", "Who was the guide of the first canoe journey on the {s}?"),
        "mapped_year": ("When was the {s} first mapped?", "In which year did {explorer} map the {s}?"),
        "canoe_days": ("How many days did {explorer} spend in a canoe?",
                       "How many days did the canoe journey of {explorer} last?"),
        "flood_year": ("When did the {s} flood badly?", "In which year did the {s} burst its banks?"),
        "flood_reason": ("Why did the {s} flood in {flood_year}?", "What caused the flood on the {s}?"),
        "shipping_year": ("When did shipping on the {s} stop?", "In which year did boats stop using the {s}?"),
        "shipping_reason": ("Why did shipping on the {s} stop?", "Why did boats stop using the {s}?"),
        "spring_colour": ("What colour is the water of the {s} in spring?", "What colour does the {s} look in spring?"),
        "summer_colour": ("What colour does the {s} turn in late summer?", "What colour is the {s} by late summer?"),
        "depth": ("How deep is the {s} near its mouth?", "What is the depth of the channel of the {s}?"),
        "width": ("How wide is the {s} near its mouth?", "What is the width of the {s} where it meets the sea?"),
        "fish_species": ("How many species of fish live in the {s}?", "How many kinds of fish does the {s} have?"),
        "ferry_city": ("Where does a ferry cross the {s}?", "At which town is there a ferry over the {s}?"),
        "ferry_year": ("Since when has a ferry crossed the {s}?", "When did the ferry over the {s} start?"),
    },
)

TREATY = Kind(
    subject="treaty",
    facts={
        "signed_date": "date", "signer": "person", "cosigner": "person", "side": "place", "enemy": "place",
        "war_date": "date", "talks_city": "place", "talks_year": "year", "talks_move_city": "place",
        "talks_reason": "reason", "payment": "dozens", "payment_year": "year", "villages": "few", "pages": "few",
        "paper_colour": "colour",
        "wax_colour": "colour", "end_date": "date", "breaker": "person", "break_reason": "reason",
        "archive_city": "place", "drafter": "person", "drafter_city": "place",
    },
    core=(
        ("The {s} was signed on {signed_date} by {signer} and {cosigner}.",
         "On {signed_date}, {signer} and {cosigner} signed the {s}."),
        ("It ended a war between {side} and {enemy} that had begun on {war_date}.",
         "The treaty ended the war that {enemy} had started against {side} on {war_date}."),
        ("Talks had started in {talks_city} in {talks_year} but were moved to {talks_move_city} {talks_reason}.",
         "Negotiations began in {talks_city} in {talks_year}; they later moved to {talks_move_city} {talks_reason}."),
        ("Under its terms {side} paid {payment} thousand crowns by {payment_year} and gave up {villages} villages.",
         "{side} agreed to pay {payment} thousand crowns by {payment_year} and to hand over {villages} villages."),
        ("It was written on {pages} pages of {paper_colour} paper and sealed with {wax_colour} wax.",
         "The document fills {pages} pages of {paper_colour} paper and carries a seal of {wax_colour} wax."),
        ("It remained in force until {end_date}, when {breaker} broke it {break_reason}.",
         "The treaty held until {end_date}; then {breaker} broke it {break_reason}."),
    ),
    optional=(
        ("A copy is kept in the archive of {archive_city}.",
         "The archive of {archive_city} holds a copy of the {s}."),
        ("It was drafted by {drafter}, a lawyer from {drafter_city}.",
         "{drafter}, a lawyer from {drafter_city}, drafted the text."),
    ),
    questions={
        "signed_date": ("When was the {s} signed?", "On what date was the {s} signed?", "What is the date of the {s}?"),
        "signer": ("Who signed the {s} together with {cosigner}?", "Along with {cosigner}, who signed the {s}?"),
        "cosigner": ("Who signed the {s} together with {signer}?", "Along with {signer}, who put their name to the {s}?"),
        "side": ("Which town fought {enemy} in the war ended by the {s}?",
                 "Who paid {payment} thousand crowns under the {s}?"),
        "enemy": ("Which town fought {side} in the war ended by the {s}?", "Who was the enemy of {side} before the {s}?"),
        "war_date": ("When had the war ended by the {s} begun?", "On what date did the war before the {s} start?"),
        "talks_city": ("Where did the talks for the {s} start?", "In which town did negotiations on the {s} begin?"),
        "talks_year": ("When did the talks for the {s} start?", "In what year did negotiations on the {s} begin?"),
        "talks_move_city": ("Where were the talks for the {s} moved?",
                            "To which town did the negotiations on the {s} move?"),
        "talks_reason": ("Why were the talks for the {s} moved?",
                         "Why did the negotiations on the {s} move to {talks_move_city}?"),
        "payment": ("How many thousand crowns did {side} pay under the {s}?",
                    "How much did {side} have to pay under the {s}, in thousands of crowns?"),
        "payment_year": ("By which year did {side} have to pay under the {s}?",
                         "When was the payment of {side} under the {s} due?"),
        "villages": ("How many villages did {side} give up?", "How many villages were handed over under the {s}?"),
        "pages": ("How many pages long is the {s}?", "On how many pages is the {s} written?"),
        "paper_colour": ("What colour is the paper of the {s}?", "On what colour of paper was the {s} written?"),
        "wax_colour": ("What colour is the wax that seals the {s}?", "What colour was the seal of the {s}?"),
        "end_date": ("Until when was the {s} in force?", "On what date did the {s} stop being in force?",
                     "When was the {s} broken?"),
        "breaker": ("Who broke the {s}?", "Who ended the {s}?"),
        "break_reason": ("Why was the {s} broken?", "Why did {breaker} break the {s}?"),
        "archive_city": ("Where is a copy of the {s} kept?", "Which archive holds a copy of the {s}?"),
        "drafter": ("Who drafted the {s}?", "Which lawyer wrote the text of the {s}?"),
        "drafter_city": ("Where did the drafter of the {s} come from?", "Which town was {drafter} from?"),
    },
)

KINDS = (PERSON, COMPANY, TOWN, RIVER, TREATY)

# Background sentences: they never mention the subject, but carry the same kinds of values (years, towns,
# people, numbers), so they are distractors too; long paragraphs are padded with them.
FILLER = (
    "In {year}, a fire destroyed much of the old market in {place}.",
    "The road from {place} to {place2} was paved in {year}.",
    "{person}, a local historian, counted {count} wooden houses in {place} in {year}.",
    "A census taken in {year} recorded {count} families in the district around {place}.",
    "In the valley the first snow usually falls in {month}.",
    "Travellers often mention the {colour} roofs of {place}.",
    "{person} opened a printing shop in {place} in {year}.",
    "The railway reached {place} in {year}, and a second line followed in {year2}.",
    "A stone marker near {place} shows that the flood of {year} rose {depth} above the road.",
    "Many families from {place} moved to {place2} during the hard winter of {year}.",
    "{org} built a warehouse in {place} in {year}.",
    "The old mill near {place} was painted {colour} in {year}.",
    "A bridge of {count} arches once crossed the valley near {place}.",
    "{person} described the region in a travel book published in {year}.",
    "Before {year}, the market in {place} had {count} stalls.",
    "Sheep have been raised on the hills above {place} for centuries.",
    "The local dialect is still spoken in {place} and in {place2}.",
    "{person} and {person2} quarrelled for years over the boundary between {place} and {place2}.",
    "A school for {count} pupils opened in {place} in {year}.",
    "The harvest of {year} was the worst anyone in {place} could remember.",
    "Pilgrims walking to {place} used to rest at an inn kept by {person}.",
    "The chapel at {place} was rebuilt in {year} after its roof fell in.",
    "Wolves were still seen in the forests near {place} as late as {year}.",
    "A small museum in {place} keeps the diaries of {person}.",
    "The fishermen of {place} paint their boats {colour}, as their grandparents did.",
    "In {year}, {person} planted an orchard of {count} apple trees outside {place}.",
    "Letters from {place} to {place2} took a week to arrive until the telegraph came in {year}.",
    "The summer of {year} was so dry that the wells of {place} ran empty.",
    "{org} opened an office in {place} in {year} and closed it again in {year2}.",
    "Every {month}, shepherds drive their flocks down from the hills to {place}.",
    "A brass band was founded in {place} in {year} by {person}.",
    "The old customs house between {place} and {place2} now serves as a library.",
)
FILLER_FIELDS = {"year": "year", "year2": "year", "place": "place", "place2": "place", "person": "person",
                 "person2": "person", "org": "org", "count": "dozens", "month": "month", "colour": "colour",
                 "depth": "depth"}

_FORMATTER = string.Formatter()


class _Names:
    """Fresh names for one split: unique within it, and disjoint from the other split's because every
    generated stem must hash to this split, so validation entities are never seen in training."""

    def __init__(self, rng: random.Random, split: int) -> None:
        self._rng, self._split, self._used = rng, split, set()

    def make(self, kind: str) -> str:
        syllables, forms = NAME_FORMS[kind]
        form = self._rng.choice(forms)
        while True:
            stems = [self._stem(syllables) for _ in range(form.count("{}"))]
            name = form.format(*stems)
            if name not in self._used and all(zlib.crc32(stem.encode()) % len(SPLITS) == self._split for stem in stems):
                self._used.add(name)
                return name

    def _stem(self, syllables: tuple[int, int]) -> str:
        rng = self._rng
        parts = (rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(rng.randint(*syllables)))
        return "".join(parts).capitalize()


class _Values:
    """Values for one paragraph, all different, so every answer is unambiguous and every distractor differs."""

    def __init__(self, rng: random.Random, names: _Names) -> None:
        self._rng, self._names, self._used = rng, names, set()

    def draw(self, kind: str) -> str:
        while True:
            value = self._make(kind)
            if value not in self._used:
                self._used.add(value)
                return value

    def _make(self, kind: str) -> str:
        rng = self._rng
        if kind == "year":
            return str(rng.randint(*YEARS))
        if kind == "date":
            return f"{rng.randint(1, LAST_DAY)} {rng.choice(MONTHS)} {self.draw('year')}"
        if kind in COUNTS:
            return f"{rng.randint(*COUNTS[kind]):,}"
        if kind in MEASURES:
            unit, low, high = MEASURES[kind]
            return f"{rng.randint(low, high):,} {unit}"
        if kind in VOCABULARY:
            return rng.choice(VOCABULARY[kind])
        return self._names.make(kind)


def _render(template: str, values: dict[str, str]) -> tuple[str, dict[str, int]]:
    """The sentence and the character offset of each fact in it (first occurrence)."""
    parts: list[str] = []
    offsets: dict[str, int] = {}
    length = 0
    for literal, field, _, _ in _FORMATTER.parse(template):
        parts.append(literal)
        length += len(literal)
        if field is not None:
            offsets.setdefault(field, length)
            parts.append(values[field])
            length += len(values[field])
    return "".join(parts), offsets


def _filler(template: str, draw: _Values) -> str:
    fields = dict.fromkeys(field for _, field, _, _ in _FORMATTER.parse(template) if field is not None)
    return template.format(**{field: draw.draw(FILLER_FIELDS[field]) for field in fields})  # drawn in a fixed order


@dataclass(frozen=True)
class Shape:
    """How long paragraphs are: `fact_sentences` (an inclusive range, or None for all of them) is how many
    of the kind's fact sentences follow the introduction; `long_context_fraction` of paragraphs add
    `long_filler_words` words of background in their middle."""

    fact_sentences: tuple[int, int] | None
    long_context_fraction: float
    long_filler_words: int


def _paragraph(rng: random.Random, names: _Names, shape: Shape) -> tuple[Kind, dict[str, str], str, dict[str, int]]:
    """One subject's paragraph: its kind, every fact's value (stated or not), the context, and the offset
    of each stated fact in it (askable or not)."""
    long_context = rng.random() < shape.long_context_fraction
    kind = rng.choice(KINDS)
    draw = _Values(rng, names)
    values = {"s": draw.draw(kind.subject)}
    if kind.subject == "person":
        values |= rng.choice(PRONOUNS) | {"sn": values["s"].split()[-1]}
    values |= {fact: draw.draw(value_kind) for fact, value_kind in kind.facts.items()}

    stated = list(kind.core[1:]) + [group for group in kind.optional if rng.random() < OPTIONAL_FACT_PROBABILITY]
    rng.shuffle(stated)  # no fact has a fixed position, so position is no shortcut
    if shape.fact_sentences is not None:
        del stated[rng.randint(*shape.fact_sentences) :]
    sentences: list[str | tuple[str, ...]] = [kind.core[0], *stated]
    if long_context:  # about half the facts after the padding: their answers sit in a later window
        middle = len(sentences) // 2
        padding: list[str] = []
        for template in rng.sample(FILLER, len(FILLER)):
            if sum(len(sentence.split()) for sentence in padding) >= shape.long_filler_words:
                break
            padding.append(_filler(template, draw))
        sentences[middle:middle] = padding
    else:
        for template in rng.sample(FILLER, rng.randint(*FILLER_SENTENCES)):
            sentences.insert(rng.randint(1, len(sentences)), _filler(template, draw))

    context, offsets = "", {}
    for sentence in sentences:
        if isinstance(sentence, tuple):  # paraphrases of a fact sentence
            text, found = _render(rng.choice(sentence), values)
        else:
            text, found = sentence, {}
        start = len(context) + (1 if context else 0)
        context = f"{context} {text}" if context else text
        for field, offset in found.items():
            offsets.setdefault(field, start + offset)
    return kind, values, context, {fact: offsets[fact] for fact in kind.facts if fact in offsets}


def answer_type(value_kind: str) -> str:
    """What an answer looks like: counts, measures and reasons of any kind look alike."""
    if value_kind in COUNTS:
        return "count"
    if value_kind in MEASURES:
        return "measure"
    return "reason" if value_kind.endswith("reason") else value_kind


def _has_distractor(kind: Kind, fact: str, stated: dict[str, int]) -> bool:
    """Whether the paragraph states another value of `fact`'s answer type (the subject's name counts)."""
    wanted = answer_type(kind.facts[fact])
    others = [kind.facts[other] for other in stated if other != fact] + [kind.subject]
    return any(answer_type(other) == wanted for other in others)


def _split(split: int, count: int, seed: int, shape: Shape, unanswerable_fraction: float) -> pd.DataFrame:
    """One split from its own random stream, so validation does not change with num_train."""
    name = SPLITS[split]
    rng = random.Random(f"qa_lab.synthetic/{seed}/{name}")
    names = _Names(rng, split)
    unanswerable = round(unanswerable_fraction * count)
    flags = [True] * unanswerable + [False] * (count - unanswerable)
    rng.shuffle(flags)
    rows: list[dict] = []
    while len(rows) < count:
        kind, values, context, offsets = _paragraph(rng, names, shape)
        # only facts with another value of their type in the paragraph are asked: the answer is never "the year"
        answerable = [fact for fact in kind.questions if fact in offsets and _has_distractor(kind, fact, offsets)]
        rng.shuffle(answerable)
        missing = [fact for fact in kind.questions if fact not in offsets]
        size = min(rng.randint(*QUESTIONS_PER_PARAGRAPH), count - len(rows), len(answerable))
        for flag in flags[len(rows) : len(rows) + size]:
            if not flag:
                fact = answerable.pop()
                question = rng.choice(kind.questions[fact]).format(**values)
                answers = {"text": [values[fact]], "answer_start": [offsets[fact]]}
            elif missing and rng.random() < MISSING_FACT_SHARE:  # a plausible fact the paragraph leaves out
                fact = missing.pop(rng.randrange(len(missing)))
                question = rng.choice(kind.questions[fact]).format(**values)
                answers = {"text": [], "answer_start": []}
            else:  # the same kind of question about a subject the paragraph does not mention
                templates = [t for fact in kind.questions if fact in offsets for t in kind.questions[fact] if "{s}" in t]
                other = values | {"s": names.make(kind.subject)}
                question = rng.choice(templates).format(**other)
                answers = {"text": [], "answer_start": []}
            rows.append({"id": f"synthetic-{name}-{len(rows):06d}", "title": values["s"], "context": context,
                         "question": question, "answers": answers})
    return pd.DataFrame(rows, columns=["id", "title", "context", "question", "answers"])


def make_synthetic(
    num_train: int,
    num_validation: int,
    seed: int,
    long_context_fraction: float = 0.1,
    unanswerable_fraction: float = 0.0,
    fact_sentences: tuple[int, int] | list[int] | None = None,
    long_filler_words: int = 330,
) -> dict[str, pd.DataFrame]:
    """A SQuAD-format train and validation set generated offline: `num_*` questions each, deterministic
    for `seed`, no paragraph or entity name shared between the splits.

    `fact_sentences` (an inclusive range; None = all) is how many fact sentences a paragraph states after
    its introduction; `long_context_fraction` of paragraphs are padded with `long_filler_words` words of
    background (330 put them past one 384-word-piece window); `unanswerable_fraction` of questions have no
    answer in their context (SQuAD v2 style).
    """
    for key, count in (("num_train", num_train), ("num_validation", num_validation)):
        if count < 0:
            raise ConfigError(f"must be >= 0, got {count}", where=f"data.synthetic.{key}", fix="e.g. 1000")
    fractions = (("long_context_fraction", long_context_fraction), ("unanswerable_fraction", unanswerable_fraction))
    for key, fraction in fractions:
        if not 0 <= fraction <= 1:
            raise ConfigError(f"must be in [0, 1], got {fraction}", where=f"data.synthetic.{key}", fix="e.g. 0.1")
    if fact_sentences is not None and not (len(fact_sentences) == 2 and 1 <= fact_sentences[0] <= fact_sentences[1]):
        raise ConfigError(f"must be [min, max] with 1 <= min <= max, got {fact_sentences}",
                          where="data.synthetic.fact_sentences", fix="e.g. [2, 4], or null for every fact sentence")
    if long_filler_words < 0:
        raise ConfigError(f"must be >= 0, got {long_filler_words}", where="data.synthetic.long_filler_words", fix="e.g. 330")
    shape = Shape(tuple(fact_sentences) if fact_sentences is not None else None, long_context_fraction, long_filler_words)
    counts = (num_train, num_validation)
    return {name: _split(index, counts[index], seed, shape, unanswerable_fraction) for index, name in enumerate(SPLITS)}
