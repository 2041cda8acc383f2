"""Parameters of a generated data set, and the vocabulary it draws from."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class GenParams:
    customers: int
    days: int
    seed: int
    end_date: dt.date = dt.date(2026, 10, 31)
    dirty_rate: float = 0.02
    daily_drops: int = 3

    def __post_init__(self) -> None:
        if self.customers < 10:
            raise ValueError("--customers must be at least 10")
        if not 30 <= self.days <= 3650:
            raise ValueError("--days must be between 30 and 3650")
        if not 0 <= self.dirty_rate <= 0.2:
            raise ValueError("dirty rate must be between 0 and 0.2")

    @property
    def start_date(self) -> dt.date:
        return self.end_date - dt.timedelta(days=self.days - 1)

    @property
    def products(self) -> int:
        return int(min(5000, max(200, self.customers // 20)))

    @property
    def campaigns(self) -> int:
        return max(6, round(self.days / 365 * 60))


CHANNELS = ["email", "sms", "push", "display", "social_ads"]
CATEGORIES = ["fashion", "shoes", "beauty", "home", "electronics", "grocery", "sports", "pets"]
REPEAT_CATEGORIES = {"beauty", "grocery", "pets"}
CATEGORY_PRICE = {  # median list price
    "fashion": 45.0, "shoes": 80.0, "beauty": 22.0, "home": 60.0,
    "electronics": 180.0, "grocery": 12.0, "sports": 55.0, "pets": 18.0,
}
BRANDS = ["Northwind", "Fabrikam", "Contoso", "Tailspin", "Litware", "Proseware", "Adatum", "Wingtip"]
COUNTRIES = {  # code: (weight, phone prefix, [(city, region, lat, lon)])
    "GB": (50, "44", [("London", "England", 51.507, -0.128), ("Manchester", "England", 53.481, -2.243),
                      ("Glasgow", "Scotland", 55.864, -4.252), ("Cardiff", "Wales", 51.481, -3.179)]),
    "DE": (20, "49", [("Berlin", "Berlin", 52.520, 13.405), ("Munich", "Bavaria", 48.137, 11.575),
                      ("Hamburg", "Hamburg", 53.551, 9.994), ("Cologne", "NRW", 50.938, 6.960)]),
    "FR": (15, "33", [("Paris", "Ile-de-France", 48.857, 2.352), ("Lyon", "Auvergne-Rhone-Alpes", 45.764, 4.836),
                      ("Marseille", "PACA", 43.296, 5.370), ("Lille", "Hauts-de-France", 50.629, 3.057)]),
    "NL": (10, "31", [("Amsterdam", "North Holland", 52.368, 4.904), ("Rotterdam", "South Holland", 51.924, 4.478),
                      ("Utrecht", "Utrecht", 52.091, 5.122), ("Eindhoven", "North Brabant", 51.441, 5.470)]),
    "ES": (5, "34", [("Madrid", "Madrid", 40.417, -3.704), ("Barcelona", "Catalonia", 41.385, 2.173),
                     ("Valencia", "Valencia", 39.470, -0.376), ("Seville", "Andalusia", 37.389, -5.984)]),
}
FIRST_NAMES = ["alex", "sam", "jo", "maria", "li", "omar", "anna", "ben", "chloe", "david", "emma", "farah",
               "george", "hana", "ivan", "julia", "kai", "lena", "marco", "nina", "oscar", "priya", "rosa", "tom"]
LAST_NAMES = ["smith", "muller", "martin", "jansen", "garcia", "brown", "weber", "dubois", "visser", "lopez",
              "taylor", "schmidt", "bernard", "bakker", "perez", "wilson", "fischer", "petit", "smit", "sanchez"]
EMAIL_DOMAINS = ["mail.example", "inbox.example", "post.example", "webmail.example"]
PLACEHOLDER_EMAILS = ["test@test.com", "noemail@noemail.com", "none@example.com", "na@na.com"]
SOCIAL_PLATFORMS = ["instagram", "facebook", "x", "tiktok"]
POSITIVE_WORDS = ["love", "great", "amazing", "perfect", "fast delivery", "excellent", "happy", "recommend"]
NEGATIVE_WORDS = ["terrible", "late", "broken", "disappointed", "refund", "worst", "rude", "never again"]
NEUTRAL_WORDS = ["ordered", "arrived", "size", "colour", "package", "today", "question", "store"]
CHANNEL_COST = {"email": 0.002, "sms": 0.03, "push": 0.0005, "display": 0.004, "social_ads": 0.006}
UTM_SOURCES = ["google", "direct", "newsletter", "instagram", "partner"]
