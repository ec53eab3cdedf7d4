# Prints a synthetic customer document of about `target` bytes (awk -v target=N):
# the five sensitive fields (email, name, address object, phone, payment.card_number)
# first, then plain order lines and delivery notes until the size is reached.
# The same shape as the documents of benches/transform.rs; no real personal data.
BEGIN {
    s = "{\"id\":\"cus_000042\",\"email\":\"jane.doe@example.com\",\"name\":\"Jane Doe\"," \
        "\"address\":{\"street\":\"12 Harbour Lane\",\"city\":\"Kiel\",\"zip\":\"24103\",\"country\":\"DE\"}," \
        "\"phone\":\"+49 431 5550123\"," \
        "\"payment\":{\"card_number\":\"4111111111111111\",\"expiry\":\"12/29\",\"brand\":\"visa\"}," \
        "\"created\":\"2024-05-01T10:00:00Z\",\"marketing_opt_in\":false,\"tier\":\"gold\"," \
        "\"items\":["
    n = length(s)
    printf "%s", s
    for (i = 0; n + 400 < target; i++) {
        line = sprintf("%s{\"sku\":\"SKU-%06d\",\"title\":\"Stoneware mug, blue, set of %d\",\"qty\":%d,\"price\":%d.%02d,\"warehouse\":\"KIE-%d\"}",
                       (i > 0 ? "," : ""), i, i % 6 + 1, i % 5 + 1, i % 90 + 5, i % 100, i % 4)
        printf "%s", line
        n += length(line)
    }
    s = "],\"notes\":["
    printf "%s", s
    n += length(s)
    for (j = 0; n + 3 < target || j == 0; j++) {
        line = sprintf("%s\"delivery note %d: leave at the back door\"", (j > 0 ? "," : ""), j)
        printf "%s", line
        n += length(line)
    }
    printf "]}"
}
