"""Vocabulary of the built-in benchmark: situations, things and features, each in several wordings.

Every *concept* (a drink, a place, a product feature) is listed with at least three wordings that
mean the same thing. The generator gives each preference one wording for what the user says, one
for the candidates of the learning phases (1 and 3) and another for the test phases (2 and 4), so
a memory only helps if the embedding model sees that "a glass of iced water" and "chilled water
with ice cubes" are the same drink: string lookup cannot pass.

Kept deliberately small and readable; add rows freely (each needs >= 3 wordings).
"""

from __future__ import annotations

from dataclasses import dataclass

Forms = tuple[str, ...]


def _forms(spec: str) -> Forms:
    return tuple(part.strip() for part in spec.split("|"))


# --------------------------------------------------------------------------- embodied

DRINKS: dict[str, Forms] = {
    key: _forms(spec)
    for key, spec in {
        "iced water": "ice-cold water with lots of ice | a tall glass of iced water | "
        "water chilled with ice cubes",
        "kombucha": "kombucha | a bottle of kombucha | fermented kombucha tea",
        "black coffee": "black coffee | a mug of black filter coffee | strong coffee served black",
        "herbal tea": "herbal tea | a cup of herbal infusion | a caffeine-free herbal brew",
        "chai": "a chai latte | a spiced chai latte | a cup of masala chai",
        "energy drink": "an energy drink | a can of energy drink | a caffeinated energy soda",
        "hot chocolate": "hot chocolate | a mug of hot cocoa | a warm chocolate drink",
        "orange juice": "fresh orange juice | a glass of squeezed orange juice | "
        "juice from fresh oranges",
        "sparkling water": "sparkling water | fizzy mineral water | a bottle of carbonated water",
        "smoothie": "a fruit smoothie | a blended berry smoothie | a thick fruit smoothie",
        "warm milk": "warm milk | a glass of warm milk | milk warmed on the stove",
        "lemonade": "lemonade | a glass of fresh lemonade | a homemade lemonade",
        "broth": "hot broth | a cup of warm chicken broth | steaming bone broth",
        "cola": "a cola | a can of cola | a glass of Coke",
    }.items()
}

SNACKS: dict[str, Forms] = {
    key: _forms(spec)
    for key, spec in {
        "almonds": "almonds | a handful of roasted almonds | a small bag of salted almonds",
        "vegetables": "fresh vegetable sticks | carrot and celery sticks | sliced raw vegetables",
        "dark chocolate": "dark chocolate | a bar of dark chocolate | "
        "a few squares of bitter dark chocolate",
        "crackers": "plain crackers | dry salted crackers | a packet of plain crackers",
        "energy bar": "an energy bar | a granola energy bar | a chewy protein bar",
        "fruit": "fresh fruit | a bowl of fresh fruit | some sliced seasonal fruit",
        "cheese": "cheese cubes | a few slices of cheddar cheese | a small cheese plate",
        "cake": "a slice of cake | a piece of sponge cake | a wedge of layer cake",
        "popcorn": "popcorn | a bowl of buttered popcorn | freshly popped popcorn",
        "yogurt": "yogurt | a cup of plain yogurt | a pot of Greek yogurt",
        "chips": "potato chips | a bag of potato crisps | crunchy salted chips",
        "sandwich": "a sandwich | a hearty filled sandwich | a big deli sandwich",
    }.items()
}


@dataclass(frozen=True)
class Place:
    forms: Forms
    preposition: str  # "on the top shelf", "in the freezer"


PLACES: dict[str, Place] = {
    key: Place(_forms(spec), prep)
    for key, (spec, prep) in {
        "top shelf": ("the top shelf | the highest shelf | the uppermost shelf", "on"),
        "counter": ("the kitchen counter | the countertop | the counter by the sink", "on"),
        "fridge door": ("the fridge door | the refrigerator door shelf | "
                        "the door rack of the fridge", "in"),
        "freezer": ("the freezer | the freezer compartment | the deep freezer", "in"),
        "pantry": ("the pantry | the pantry cupboard | the pantry closet", "in"),
        "bookshelf": ("the bookshelf | the bookcase | the tall bookcase", "on"),
        "desk": ("my desk | the desk in my study | my work desk", "on"),
        "nightstand": ("the nightstand | the bedside table | the bedside nightstand", "on"),
        "dining table": ("the dining table | the dining room table | the dinner table", "on"),
        "drawer": ("a kitchen drawer | the cutlery drawer | a drawer in the kitchen", "in"),
        "windowsill": ("the windowsill | the kitchen windowsill | the sill by the window", "on"),
        "coffee table": ("the coffee table | the living room coffee table | "
                         "the coffee table by the sofa", "on"),
    }.items()
}

#: Places nobody would choose for food or books: the off-kind distractors of placements.
UNSUITABLE_PLACES: Forms = (
    "the laundry basket", "the bathtub", "the shoe rack", "the recycling bin", "the garage floor",
)


@dataclass(frozen=True)
class Situation:
    """A situation a preference depends on, in two wordings (learning and test phases).

    ``kind``: "drink" / "snack" (fetch one of the candidates) or "placement" (put ``subject``
    on one of the candidate places). ``condition`` starts what the user says ("When I'm
    dehydrated, I want ..."). ``labels``/``tasks``: (learning wording, test wording).
    """

    key: str
    kind: str
    condition: str
    labels: tuple[str, str]
    tasks: tuple[str, str]
    subjects: Forms = ()


SITUATIONS: tuple[Situation, ...] = (
    Situation("dehydrated", "drink", "When I'm dehydrated", ("Dehydrated", "Very thirsty"), (
        "I'm really dehydrated right now. Could you bring me something to drink?",
        "I just got back from a long run and I'm parched. Can you get me a drink?")),
    Situation("drowsy", "drink", "When I'm drowsy", ("Drowsy", "Sleepy at work"), (
        "I'm feeling so drowsy. Could you bring me something to drink?",
        "I can barely keep my eyes open this afternoon. What can you get me to drink?")),
    Situation("anxious", "drink", "When I'm anxious", ("Anxious", "Nervous before a meeting"), (
        "I'm feeling anxious about this project. Could you bring me a drink?",
        "My presentation is in ten minutes and I'm jittery. Could you get me something to "
        "drink?")),
    Situation("celebrating drink", "drink", "When I'm celebrating", ("Celebrating",
              "Good news"), (
        "We just landed the contract! Could you bring me something to drink?",
        "I got the promotion! Can you fetch me a drink to mark it?")),
    Situation("unwell", "drink", "When I'm unwell", ("Unwell", "Under the weather"), (
        "I'm feeling sick today. Could you bring me something to drink?",
        "I think I'm coming down with a cold. Can you get me a drink?")),
    Situation("cold weather", "drink", "When it's cold outside", ("Cold weather",
              "Freezing outside"), (
        "It's freezing out and I just came in. Could you bring me a drink?",
        "It's snowing and my hands are numb. What can you get me to drink?")),
    Situation("hot weather", "drink", "When it's hot outside", ("Hot weather", "Heatwave"), (
        "It's so hot outside today. Could you bring me something to drink?",
        "It's ninety-five degrees out there. Can you get me a drink?")),
    Situation("morning", "drink", "In the morning", ("Morning", "Just woke up"), (
        "Good morning! Could you bring me something to drink?",
        "It's 7 AM and I'm just out of bed. Can you get me a drink?")),
    Situation("evening", "drink", "In the evening", ("Evening", "Winding down at night"), (
        "It's 8 PM. Could you bring me something to drink?",
        "I'm relaxing before bed. Can you fetch me a drink?")),
    Situation("work focus", "snack", "When I need to focus on work", ("Work focus",
              "Deadline crunch"), (
        "I have a big report to finish. Could you bring me a snack?",
        "I'm racing a deadline and need brain fuel. Can you get me something to eat?")),
    Situation("queasy", "snack", "When I'm queasy", ("Queasy", "Upset stomach"), (
        "I'm feeling queasy. Could you bring me something to eat?",
        "My stomach is unsettled. What could I eat?")),
    Situation("healthy", "snack", "When I'm eating healthy", ("Healthy eating",
              "Eating clean this week"), (
        "I'm trying to eat healthier. Could you bring me a snack?",
        "I'm on a clean-eating week. Can you get me something to nibble?")),
    Situation("very hungry", "snack", "When I'm very hungry", ("Very hungry", "Starving"), (
        "I skipped lunch and I'm very hungry. Could you bring me something to eat?",
        "I'm absolutely starving. Can you get me some food?")),
    Situation("cheat day", "snack", "On a cheat day", ("Cheat day", "Treat day"), (
        "It's my cheat day! Could you bring me something to eat?",
        "Today I'm allowed a treat. What can you get me?")),
    Situation("movie night", "snack", "During a movie night", ("Movie night",
              "Watching a film"), (
        "We're starting a movie. Could you bring me a snack?",
        "The film is about to begin. Can you grab me something to munch?")),
    Situation("celebrating snack", "snack", "When I'm celebrating", ("Celebrating",
              "Good news"), (
        "We just landed the contract! Could you bring me something to eat?",
        "I got the promotion! Can you get me a snack to mark it?")),
    Situation("pre workout", "snack", "Before a workout", ("Before a workout",
              "Heading to the gym"), (
        "I'm about to work out. Could you bring me a snack?",
        "I leave for the gym in twenty minutes. What should I eat?")),
    Situation("storing snacks", "placement", "When I put snacks away", ("Storing snacks",
              "Putting snacks away"), (
        "Could you put these snacks away where they belong?",
        "I just bought snacks. Can you store them in my usual spot?"),
        _forms("these snacks | this bag of snacks | my snack packets")),
    Situation("after reading", "placement", "When I'm done reading a book", ("After reading",
              "Finished my book"), (
        "I finished reading this book. Could you put it away?",
        "I'm done with this novel for today. Can you put it in the right place?"),
        _forms("this book | the novel I just finished | my paperback")),
    Situation("storing drinks", "placement", "When I store drinks", ("Storing drinks",
              "Putting drinks away"), (
        "Could you put these drinks away?",
        "I just restocked my drinks. Can you store them where I like?"),
        _forms("these drinks | the cans of soda | the bottles I bought")),
    Situation("remembering", "placement", "When I need to remember something",
              ("Something to remember", "Don't let me forget"), (
        "I need to remember to take these vitamins. Could you put them somewhere?",
        "Please put my supplements where I won't forget them."),
        _forms("my vitamins | my supplements | the pill box")),
    Situation("guests", "placement", "When I have guests over", ("Guests coming",
              "Hosting friends"), (
        "Guests are coming soon. Could you set out these snacks?",
        "Friends are on their way. Can you put the snack platter somewhere?"),
        _forms("the party snacks | the snack platter | the appetizers")),
    Situation("sick day", "placement", "When I'm sick", ("Sick day", "Feeling ill"), (
        "I'm sick today. Could you put my tea things somewhere for me?",
        "I'm ill and staying home. Can you put my medicine and tea nearby?"),
        _forms("my tea things | my medicine and tea | the cough drops")),
    Situation("rushing", "placement", "When I'm in a hurry", ("In a hurry", "Rushing out"), (
        "I'm in a hurry. Could you put my lunch box somewhere I'll grab it?",
        "I'm running late. Where can you leave my packed lunch?"),
        _forms("my lunch box | my packed lunch | the lunch bag")),
    Situation("working late", "placement", "When I'm working late", ("Working late",
              "Late night at the desk"), (
        "I'm working late tonight. Could you put this thermos of coffee somewhere?",
        "Long night ahead. Where can you set my coffee flask?"),
        _forms("this thermos of coffee | my coffee flask | the coffee thermos")),
    Situation("after dinner", "drink", "After dinner", ("After dinner", "Finished my meal"), (
        "That was a big dinner. Could you bring me something to drink?",
        "We just cleared the plates. Can you get me a drink?")),
    Situation("afternoon slump", "snack", "In the afternoon slump", ("Afternoon slump",
              "Mid-afternoon dip"), (
        "It's 3 PM and I'm flagging. Could you bring me a snack?",
        "The afternoon is dragging and I need a pick-me-up. Can you get me something to eat?")),
    Situation("road trip", "snack", "On a road trip", ("Road trip", "Long drive ahead"), (
        "We're leaving on a road trip. Could you bring me a snack for the car?",
        "It's a five-hour drive today. What can you get me to eat on the way?")),
    Situation("leftovers", "placement", "When I save leftovers", ("Saving leftovers",
              "Keeping what's left"), (
        "Could you put these leftovers away for later?",
        "We didn't finish dinner. Can you store what's left?"),
        _forms("these leftovers | the rest of dinner | the leftover pasta")),
    Situation("mail", "placement", "When the mail arrives", ("Mail arrived", "Post came in"), (
        "The mail just came. Could you put these letters somewhere?",
        "The post is here. Where can you leave my letters?"),
        _forms("these letters | today's mail | the envelopes that came")),
    Situation("keys", "placement", "When I come home", ("Coming home", "Back from outside"), (
        "I'm home. Could you put my keys away?",
        "I just walked in the door. Can you leave my keys in the usual spot?"),
        _forms("my keys | my house keys | the key ring")),
)

# --------------------------------------------------------------------------- shopping

#: product -> feature category -> six feature values, each "wording | wording | wording".
#: Per user, one value of a category is the favourite, two are fine, three are refused.
PRODUCTS: dict[str, dict[str, tuple[Forms, ...]]] = {
    product: {cat: tuple(_forms(v) for v in values) for cat, values in cats.items()}
    for product, cats in {
        "coffee maker": {
            "brewing method": (
                "drip filter brewing | filter drip brewer | classic drip-filter system",
                "15-bar espresso pump | high-pressure espresso pump | pump espresso brewing",
                "single-serve coffee pods | capsule pod system | one-cup pod brewing",
                "French press plunger | press-pot plunger | plunger-style French press",
                "cold brew steeping | slow cold-brew extraction | cold-brew system",
                "pour-over cone dripper | manual pour-over cone | pour-over brewing cone",
            ),
            "extras": (
                "steam wand for milk | manual milk steam wand | steam wand frother",
                "built-in burr grinder | integrated burr grinder | conical burr grinder",
                "programmable timer | auto-start timer | scheduled brew timer",
                "hot water spout for tea | separate hot water spout | tea water spout",
                "reusable gold filter | permanent mesh filter | washable metal filter",
                "charcoal water filter | built-in water filter cartridge | "
                "charcoal filtration cartridge",
            ),
            "controls": (
                "physical push buttons | tactile push-button panel | hardware push buttons",
                "touchscreen display | color touchscreen | touchscreen control panel",
                "smartphone app control | phone app control | app control from your phone",
                "rotary dial | rotary knob selector | turn dial control",
                "voice assistant control | voice command control | hands-free voice control",
                "single power switch | simple power switch | basic on-off switch",
            ),
        },
        "vacuum cleaner": {
            "design": (
                "upright body | full-size upright | tall upright frame",
                "self-driving robot | autonomous robot | robot that drives itself",
                "slim cordless stick | lightweight stick vac | cordless stick vacuum",
                "canister on wheels | pull-along canister | canister with a hose",
                "compact handheld | small hand-held unit | palm-sized handheld",
                "whole-house central system | central system with wall inlets | "
                "built-in central unit",
            ),
            "dust collection": (
                "bagless dust cup | bagless cyclone cup | bagless dust bin",
                "disposable paper bags | throwaway paper bags | replaceable paper bags",
                "water filtration tank | water filter tank | water-bath filtration",
                "self-emptying base station | self-emptying dock | auto self-emptying base",
                "washable cloth bag | reusable washable bag | washable fabric bag",
                "sealed HEPA cartridge | HEPA filter cartridge | sealed HEPA filter",
            ),
            "power": (
                "corded mains power | plug-in power cord | wall-socket power cable",
                "lithium-ion battery | rechargeable lithium battery | removable lithium pack",
                "two swappable batteries | dual hot-swap batteries | "
                "pair of swappable batteries",
                "solar charging dock | solar-powered charging base | solar charger dock",
                "USB-C charging | charges via USB-C | USB-C rechargeable",
                "retractable cord reel | auto-rewind retractable cord | retractable cable reel",
            ),
        },
        "backpack": {
            "material": (
                "waxed canvas | waxed cotton canvas | oiled waxed canvas",
                "ballistic nylon | tough ballistic nylon fabric | heavy ballistic nylon",
                "full-grain leather | genuine leather hide | top-grain leather",
                "recycled polyester | fabric from recycled bottles | recycled PET polyester",
                "ripstop nylon | lightweight ripstop fabric | tear-resistant ripstop",
                "cork fabric | vegan cork leather | cork-based material",
            ),
            "closure": (
                "roll-top closure | roll-top opening | roll-down top",
                "full zip opening | zip-around closure | zippered opening",
                "drawstring closure | drawstring cinch top | cinch drawstring",
                "magnetic buckles | magnetic clasps | magnetic snap buckles",
                "clamshell opening | opens flat like a clamshell | suitcase-style clamshell",
                "velcro flap | velcro hook-and-loop flap | velcro closure flap",
            ),
            "carry system": (
                "padded shoulder straps | cushioned backpack straps | thick padded straps",
                "single sling strap | one-shoulder sling | crossbody sling strap",
                "hip belt with load lifters | padded hip belt | hip-belt suspension",
                "trolley wheels | rolling wheels and pull handle | wheeled trolley base",
                "briefcase carry handles | side briefcase handle | briefcase-style handles",
                "minimal webbing straps | thin webbing straps | bare strap webbing",
            ),
        },
        "desk lamp": {
            "light source": (
                "warm LED panel | warm-white LED strip | soft warm LEDs",
                "halogen bulb | halogen lamp | bright halogen light",
                "incandescent bulb | classic incandescent bulb | warm incandescent filament",
                "fluorescent tube | compact fluorescent bulb | fluorescent light tube",
                "full-spectrum daylight bulb | natural daylight bulb | daylight-balanced bulb",
                "OLED light panel | organic OLED panel | thin OLED sheet",
            ),
            "arm": (
                "spring-balanced swing arm | architect-style spring arm | "
                "spring-loaded swing arm",
                "flexible gooseneck | bendable gooseneck | gooseneck neck",
                "fixed straight stem | rigid fixed stem | fixed upright stem",
                "clamp-on boom arm | desk clamp arm | clamp-mounted arm",
                "telescoping pole | telescopic stem | extendable telescoping pole",
                "wall-mounted bracket | wall-mounted arm | bracket mounted on the wall",
            ),
            "switch": (
                "touch-sensitive base | touch-control base | tap-to-dim touch base",
                "inline cord switch | switch on the cord | in-cord switch",
                "motion sensor | motion-activated sensor | motion-sensing switch",
                "wireless remote | handheld remote control | wireless remote control",
                "smart-home app | smart app control | app-controlled smart lamp",
                "pull chain | pull-chain switch | beaded pull chain",
            ),
        },
    }.items()
}

SHOPPING_TASKS: tuple[tuple[str, ...], tuple[str, ...]] = (
    (  # learning phases
        "Looking to buy a {product} that matches what I want",
        "Could you order me a {product} I'd like?",
        "Please pick out a {product} for me",
    ),
    (  # test phases
        "I need a new {product}; choose one for me",
        "Find me a {product} that suits me",
        "Help me buy the right {product}",
    ),
)

#: Simulated users, in order; the first ``users`` are used. 40 is the published embodied size.
USERS: tuple[str, ...] = (
    "Avery", "Bruno", "Chiara", "Dmitri", "Esme", "Farid", "Greta", "Hiro", "Ines", "Jonah",
    "Keiko", "Luca", "Mariam", "Nikolai", "Olu", "Priya", "Quentin", "Rosa", "Sven", "Tamar",
    "Umar", "Valentina", "Wen", "Ximena", "Yusuf", "Zofia", "Amara", "Bjorn", "Camila", "Dev",
    "Elif", "Fionn", "Gabriela", "Hamid", "Ingrid", "Joaquin", "Kwame", "Leila", "Mateo", "Noor",
)
