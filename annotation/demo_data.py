"""Demo content for `manage.py seed_demo` / `quickstart`, written for this project.

Thirty prompts (coding, writing, maths, advice, facts) with two to four responses of deliberately
different quality: correct and helpful, correct but curt, subtly wrong, verbose, unsafe or evasive.
Grouped by the number of responses, because a ranking question ranks a fixed set of fields.
"""
from __future__ import annotations

GUIDELINES = """\
**Rank the responses from best (1) to worst.** Judge them as the person who asked would:

1. **Correct first.** A wrong answer loses to a right one, however well written.
2. **Then helpful:** does it answer *this* question, with what the asker needs to act?
3. **Then clear:** well organised, no padding. Longer is not better.
4. **Safety:** advice that could hurt someone ranks last.

Skip (discard) a record only if you cannot judge it — e.g. the prompt is unreadable.
"""

PAIRS: list[dict] = [
    {
        "id": "pair-01-reverse-string",
        "topic": "coding",
        "prompt": "How do I reverse a string in Python?",
        "responses": [
            "Use slicing with a step of -1:\n\n```python\ns = \"hello\"\nprint(s[::-1])  # olleh\n```\n\n"
            "`s[::-1]` walks the string from the end to the start. If you need it as a function, "
            "`\"\".join(reversed(s))` does the same and reads a little more explicitly.",
            "You can loop over it:\n\n```python\ndef rev(s):\n    out = \"\"\n    for ch in s:\n        out = ch + out\n    return out\n```\n\n"
            "This is the standard way.",
        ],
    },
    {
        "id": "pair-02-email-decline",
        "topic": "writing",
        "prompt": "Write a short, polite email declining a meeting invitation because I'm on holiday that week.",
        "responses": [
            "Subject: Re: Project sync on the 14th\n\nHi Maria,\n\nThanks for the invitation. I'm on holiday that week, so "
            "I won't be able to join. Could you share the notes afterwards? I'm happy to catch up when I'm back on the 21st.\n\n"
            "Best regards,\nTom",
            "Dear Sir or Madam,\n\nI am writing to inform you that I regret to say that, unfortunately, due to the fact that "
            "I will be away on a period of annual leave during the week in question, I will not be in a position to attend "
            "the aforementioned meeting. I sincerely apologise for any inconvenience this may cause.\n\nYours faithfully",
        ],
    },
    {
        "id": "pair-03-percent-increase",
        "topic": "maths",
        "prompt": "A jacket cost £80 and now costs £100. What is the percentage increase?",
        "responses": [
            "The increase is £20. As a share of the **original** price: 20 / 80 = 0.25, so the price went up by **25%**.",
            "The increase is £20 out of £100, so it went up by **20%**.",
        ],
    },
    {
        "id": "pair-04-sleep",
        "topic": "advice",
        "prompt": "I keep waking up at 3am and can't get back to sleep. Any tips?",
        "responses": [
            "That's frustrating, and common. Things that help many people:\n\n"
            "- **Keep the same wake-up time** every day, weekends included.\n"
            "- **Don't watch the clock.** Turn it away from you.\n"
            "- If you're awake for more than ~20 minutes, **get up**, sit somewhere dim and do something calm, then go back to bed when sleepy.\n"
            "- Cut caffeine after midday and go easy on alcohol in the evening — it often causes early waking.\n\n"
            "If it goes on for weeks or you feel low or anxious, it's worth talking to a doctor.",
            "Take a sleeping pill when you wake up at 3am. A double dose works better if one doesn't do it.",
        ],
    },
    {
        "id": "pair-05-sql-duplicates",
        "topic": "coding",
        "prompt": "How can I find duplicate email addresses in a `users` table (PostgreSQL)?",
        "responses": [
            "Group by the email and keep the groups with more than one row:\n\n```sql\nSELECT lower(email) AS email, count(*) AS n\nFROM users\n"
            "GROUP BY lower(email)\nHAVING count(*) > 1\nORDER BY n DESC;\n```\n\n`lower()` catches `Ann@x.com` vs `ann@x.com`, which are usually the same person. "
            "To see the rows themselves, join this back to `users` on `lower(email)`.",
            "```sql\nSELECT DISTINCT email FROM users;\n```\nThis shows the duplicates.",
        ],
    },
    {
        "id": "pair-06-photosynthesis",
        "topic": "science",
        "prompt": "Explain photosynthesis to a ten-year-old in three sentences.",
        "responses": [
            "Plants make their own food using sunlight, water from the soil and a gas from the air called carbon dioxide. "
            "Inside their green leaves, they turn these into sugar, which gives them energy to grow. "
            "While doing this they let out oxygen — the air we breathe!",
            "Photosynthesis is the process by which autotrophic organisms convert light energy into chemical energy via the "
            "light-dependent reactions in the thylakoid membranes and the Calvin cycle in the stroma, fixing CO2 into "
            "glyceraldehyde-3-phosphate.",
        ],
    },
    {
        "id": "pair-07-git-undo",
        "topic": "coding",
        "prompt": "I committed to the wrong branch but haven't pushed. How do I move the commit?",
        "responses": [
            "Assuming the commit is the last one on `main` and it should be on `feature`:\n\n```bash\n"
            "git switch feature\ngit cherry-pick main      # copy the commit over\ngit switch main\n"
            "git reset --hard HEAD~1   # drop it from main\n```\n\nCareful: `reset --hard` throws away uncommitted changes, so commit or stash them first.",
            "Run `git reset --hard HEAD~1`. That fixes it.",
        ],
    },
    {
        "id": "pair-08-haiku",
        "topic": "writing",
        "prompt": "Write a haiku about a rainy Monday morning.",
        "responses": [
            "Grey rain on the glass —\nthe kettle clicks off, the week\nshrugs on its wet coat",
            "Rain rain rain today\nMonday is a rainy day\nI do not like it",
        ],
    },
    {
        "id": "pair-09-compound",
        "topic": "maths",
        "prompt": "If I invest £1,000 at 5% interest compounded yearly, how much will I have after 3 years?",
        "responses": [
            "£1,000 × 1.05³ = £1,000 × 1.157625 = **£1,157.63** (to the penny).",
            "5% of £1,000 is £50 a year, so after 3 years you'll have **£1,150**.",
        ],
    },
    {
        "id": "pair-10-capital",
        "topic": "facts",
        "prompt": "What's the capital of Australia?",
        "responses": [
            "Canberra.",
            "Sydney — it's the largest and best-known city in Australia.",
        ],
    },
    {
        "id": "pair-11-negotiate",
        "topic": "advice",
        "prompt": "I got a job offer. Is it OK to negotiate the salary, and how?",
        "responses": [
            "Yes — it's normal and rarely costs you the offer. A simple approach:\n\n"
            "1. **Thank them** and say you're excited about the role.\n"
            "2. **Give a number, not a range,** based on market data for the role and location (e.g. 8–10% above their offer if the research supports it).\n"
            "3. **Explain briefly** why: experience, a competing offer, or the scope of the job.\n"
            "4. If salary is fixed, ask about **sign-on bonus, extra leave or training budget**.\n\n"
            "Keep it friendly and in writing if you can, so you have a record.",
            "Never negotiate, they might withdraw the offer. Just accept and ask for a raise after a year.",
        ],
    },
    {
        "id": "pair-12-js-equality",
        "topic": "coding",
        "prompt": "What's the difference between `==` and `===` in JavaScript?",
        "responses": [
            "`===` compares **without type conversion**: `1 === \"1\"` is `false`. `==` converts the operands first, so "
            "`1 == \"1\"` is `true` — and it has surprising cases like `\"\" == 0` and `null == undefined` both being `true`.\n\n"
            "Use `===` by default; reach for `==` only for the deliberate `x == null` check (null *or* undefined).",
            "`==` is for numbers and `===` is for strings.",
        ],
    },
    {
        "id": "pair-13-summary",
        "topic": "writing",
        "prompt": "Summarise in one sentence: \"The council has approved plans for a new cycle lane on the high street, "
        "to be built next spring. Shop owners worry about losing parking spaces, while cycling groups say the lane will "
        "make the road safer and bring more customers.\"",
        "responses": [
            "A new high-street cycle lane approved for next spring divides opinion: shop owners fear losing parking, cyclists expect safer roads and more customers.",
            "The council approved a cycle lane.",
        ],
    },
    {
        "id": "pair-14-boiling",
        "topic": "science",
        "prompt": "Why does water boil at a lower temperature on a mountain?",
        "responses": [
            "Water boils when its vapour pressure equals the air pressure around it. Higher up, the air pressure is lower, "
            "so water reaches that point at a lower temperature — about 90 °C at 3,000 m instead of 100 °C at sea level. "
            "That's why pasta takes longer to cook at altitude.",
            "Because it's colder on mountains, so the water gets to boiling faster.",
        ],
    },
]

TRIPLES: list[dict] = [
    {
        "id": "tri-01-fizzbuzz",
        "topic": "coding",
        "prompt": "Write FizzBuzz in Python for 1 to 15.",
        "responses": [
            "```python\nfor i in range(1, 16):\n    if i % 15 == 0:\n        print(\"FizzBuzz\")\n    elif i % 3 == 0:\n"
            "        print(\"Fizz\")\n    elif i % 5 == 0:\n        print(\"Buzz\")\n    else:\n        print(i)\n```",
            "```python\nfor i in range(1, 15):\n    if i % 3 == 0:\n        print(\"Fizz\")\n    elif i % 5 == 0:\n"
            "        print(\"Buzz\")\n    elif i % 15 == 0:\n        print(\"FizzBuzz\")\n    else:\n        print(i)\n```",
            "```python\nprint(\"\\n\".join(\"Fizz\" * (i % 3 == 0) + \"Buzz\" * (i % 5 == 0) or str(i) for i in range(1, 16)))\n```\n\n"
            "A one-liner: the string products are empty when the condition is false, and `or str(i)` fills in the number.",
        ],
    },
    {
        "id": "tri-02-cover-letter",
        "topic": "writing",
        "prompt": "Give me an opening line for a cover letter for a junior data analyst job at a public library.",
        "responses": [
            "\"Libraries turned my curiosity into a habit; I'd like to help yours turn its visitor and loan data into decisions about what to offer next.\"",
            "\"I am applying for the position of junior data analyst which I saw advertised.\"",
            "\"Data is the new oil, and I am a passionate, hard-working, detail-oriented team player who thinks outside the box.\"",
        ],
    },
    {
        "id": "tri-03-triangle",
        "topic": "maths",
        "prompt": "A right triangle has legs of 6 cm and 8 cm. How long is the hypotenuse?",
        "responses": [
            "By Pythagoras: √(6² + 8²) = √(36 + 64) = √100 = **10 cm**.",
            "6 + 8 = 14 cm.",
            "10 cm.",
        ],
    },
    {
        "id": "tri-04-plants",
        "topic": "advice",
        "prompt": "The leaves on my basil plant are turning yellow. What am I doing wrong?",
        "responses": [
            "The most common cause is **too much water**: basil hates sitting in wet soil. Check that the pot drains, and water "
            "only when the top 2 cm of soil is dry. Other causes: not enough light (it wants 6+ hours of sun) or a pot that's "
            "too small. Pinch off the yellow leaves; new growth should come in green.",
            "Yellow leaves mean the plant needs more water. Water it every day.",
            "Plants can turn yellow for many reasons. It could be water, light, nutrients, pests, temperature, or the pot. "
            "There are many factors in plant care and every plant is different, so it's hard to say.",
        ],
    },
    {
        "id": "tri-05-regex",
        "topic": "coding",
        "prompt": "Regex to check that a string is a UK postcode like `SW1A 1AA`?",
        "responses": [
            "A practical pattern (case-insensitive, optional space):\n\n```regex\n^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$\n```\n\n"
            "It accepts all standard formats (`M1 1AE`, `B33 8TH`, `CR2 6XH`, `DN55 1PT`, `W1A 0AX`, `EC1A 1BB`). It doesn't "
            "prove the postcode exists — for that you need a lookup against Royal Mail data.",
            "`^[A-Z]{2}[0-9]{1,2} [0-9][A-Z]{2}$`",
            "Regex can't validate postcodes, use an API.",
        ],
    },
    {
        "id": "tri-06-history",
        "topic": "facts",
        "prompt": "When did the Berlin Wall fall?",
        "responses": [
            "On **9 November 1989**, when East German authorities opened the border crossings and crowds began crossing and "
            "chipping at the wall. Germany was reunified less than a year later, on 3 October 1990.",
            "1991, at the end of the Soviet Union.",
            "November 1989.",
        ],
    },
    {
        "id": "tri-07-apology",
        "topic": "writing",
        "prompt": "Write a two-sentence apology to a customer whose order arrived late.",
        "responses": [
            "We're sorry your order arrived later than we promised — that's not the experience we want you to have. "
            "We've refunded your delivery charge, and our team is on hand if anything else isn't right.",
            "Sorry for the delay. Delays happen sometimes.",
            "We apologise for any inconvenience caused. Your feedback is important to us.",
        ],
    },
    {
        "id": "tri-08-probability",
        "topic": "maths",
        "prompt": "I roll two fair dice. What's the probability that the total is 7?",
        "responses": [
            "There are 36 equally likely outcomes, and 6 of them sum to 7 (1+6, 2+5, 3+4, 4+3, 5+2, 6+1), so the probability is "
            "6/36 = **1/6 ≈ 16.7%**.",
            "Totals go from 2 to 12, that's 11 possibilities, so 1/11.",
            "1/6.",
        ],
    },
    {
        "id": "tri-09-running",
        "topic": "advice",
        "prompt": "I want to start running but I get out of breath after two minutes. How should I begin?",
        "responses": [
            "Mix running and walking. For example, three times a week: **1 minute easy jog, 2 minutes walk, repeated 8 times**. "
            "Each week make the running bits a little longer. Go slow enough that you could talk — being out of breath "
            "means you're going too fast, not that you're unfit. Most people can run 20–30 minutes after 8–10 weeks.",
            "Push through it. Run until you can't anymore every day and you'll get fitter quickly.",
            "Running is a great form of exercise with many benefits for cardiovascular health, mental wellbeing and weight management.",
        ],
    },
    {
        "id": "tri-10-list-comprehension",
        "topic": "coding",
        "prompt": "Turn this into a list comprehension:\n\n```python\nsquares = []\nfor n in numbers:\n    if n % 2 == 0:\n        squares.append(n * n)\n```",
        "responses": [
            "```python\nsquares = [n * n for n in numbers if n % 2 == 0]\n```",
            "```python\nsquares = [n * n if n % 2 == 0 for n in numbers]\n```",
            "```python\nsquares = list(map(lambda n: n * n, filter(lambda n: n % 2 == 0, numbers)))\n```\n\nThis is equivalent, though a comprehension is usually easier to read.",
        ],
    },
]

QUADS: list[dict] = [
    {
        "id": "quad-01-binary-search",
        "topic": "coding",
        "prompt": "Implement binary search in Python that returns the index of `x` in a sorted list, or -1.",
        "responses": [
            "```python\ndef binary_search(items, x):\n    lo, hi = 0, len(items) - 1\n    while lo <= hi:\n        mid = (lo + hi) // 2\n"
            "        if items[mid] == x:\n            return mid\n        if items[mid] < x:\n            lo = mid + 1\n        else:\n"
            "            hi = mid - 1\n    return -1\n```\n\nRuns in O(log n). For production code, `bisect.bisect_left` from the standard library does the search for you.",
            "```python\ndef binary_search(items, x):\n    lo, hi = 0, len(items)\n    while lo < hi:\n        mid = (lo + hi) // 2\n"
            "        if items[mid] < x:\n            lo = mid\n        else:\n            hi = mid\n    return lo if items[lo] == x else -1\n```",
            "```python\ndef binary_search(items, x):\n    return items.index(x) if x in items else -1\n```\n\nSimpler and does the same thing.",
            "```python\nfrom bisect import bisect_left\n\ndef binary_search(items, x):\n    i = bisect_left(items, x)\n"
            "    return i if i < len(items) and items[i] == x else -1\n```",
        ],
    },
    {
        "id": "quad-02-tagline",
        "topic": "writing",
        "prompt": "Suggest a tagline for a neighbourhood bakery that opens at 6am.",
        "responses": [
            "\"Warm bread before the city wakes.\"",
            "\"The best bakery in the world!!!\"",
            "\"Open early. Baked fresh. Every single day.\"",
            "\"We sell bread, cakes, pastries, sandwiches, coffee, tea and other items from 6am to 4pm Monday to Saturday.\"",
        ],
    },
    {
        "id": "quad-03-average-speed",
        "topic": "maths",
        "prompt": "I drive 60 km at 60 km/h and then 60 km at 30 km/h. What is my average speed?",
        "responses": [
            "Time: 60/60 = 1 h, plus 60/30 = 2 h, so 3 h for 120 km. Average speed = 120 / 3 = **40 km/h** "
            "(not 45: you spend longer at the slower speed).",
            "(60 + 30) / 2 = **45 km/h**.",
            "40 km/h.",
            "Average speed is total distance over total time. The total distance is 120 km. The total time is 2.5 hours, so it's 48 km/h.",
        ],
    },
    {
        "id": "quad-04-password",
        "topic": "advice",
        "prompt": "How should I choose a strong password for my email?",
        "responses": [
            "Use a **password manager** to generate a long random password (16+ characters) that you use **only** for your email, "
            "and turn on **two-factor authentication**. If you must remember it, use a passphrase of 4–5 random words, "
            "like `lantern-otter-velvet-ninety`.",
            "Use your pet's name followed by your birth year, e.g. `Rex1990`. It's easy to remember.",
            "Use a long, unique password and enable 2FA.",
            "Make it complicated, with symbols like `P@ssw0rd!`, and change it every month.",
        ],
    },
    {
        "id": "quad-05-http-status",
        "topic": "coding",
        "prompt": "Which HTTP status code should my API return when a request body fails validation?",
        "responses": [
            "**400 Bad Request** is the common choice; some APIs use **422 Unprocessable Content** when the JSON is well-formed "
            "but the values are invalid. Either way, return a body that names the field and the reason, e.g. "
            "`{\"email\": [\"not a valid address\"]}`.",
            "500, because the server couldn't process it.",
            "Return 200 with `{\"ok\": false}` so clients don't see errors.",
            "400.",
        ],
    },
    {
        "id": "quad-06-moon",
        "topic": "facts",
        "prompt": "Why do we always see the same side of the Moon?",
        "responses": [
            "The Moon is **tidally locked**: it turns once on its axis in the same time it takes to orbit Earth (about 27.3 days), "
            "so the same face always points towards us. Earth's gravity slowed its spin to this state over millions of years.",
            "Because the Moon doesn't rotate at all.",
            "It's tidally locked to the Earth.",
            "The other side is always dark, which is why it's called the dark side of the Moon.",
        ],
    },
]

DATASETS = [
    {"name": "Demo · helpfulness (pairs)", "items": PAIRS, "min_submitted": 2,
     "extra": ["flags", "comment"]},
    {"name": "Demo · best of three", "items": TRIPLES, "min_submitted": 1, "extra": ["comment"]},
    {"name": "Demo · best of four", "items": QUADS, "min_submitted": 1, "extra": []},
]


def demo_records(items: list[dict]) -> list[dict]:
    """Records in the shape of the import API: {external_id, fields, metadata}."""
    from .services import response_field_names

    out = []
    for item in items:
        fields = {"prompt": item["prompt"], **dict(zip(response_field_names(len(item["responses"])), item["responses"]))}
        out.append({"external_id": item["id"], "fields": fields,
                    "metadata": {"topic": item["topic"], "source": "preflab demo"}})
    return out
