from finsentry.models.entities import EntityExtractor, extract_entities


def test_cashtags_and_company_names():
    assert extract_entities("Apple cuts guidance as $TSLA rallies") == ["TSLA", "AAPL"]
    assert extract_entities("Bank of America and JPMorgan's traders") == ["BAC", "JPM"]
    assert extract_entities("$brk.b hits a record") == ["BRK.B"]


def test_no_false_matches_on_common_words_and_prices():
    assert extract_entities("apple pie recipes for the holidays") == []
    assert extract_entities("Target practice at the range") == []
    assert extract_entities("It costs $5 or US$100") == []
    assert extract_entities("Metadata is not Meta Platforms") == ["META"]


def test_title_and_text_deduplicated_in_order():
    assert extract_entities("Exxon slides", "Exxon Mobil and Chevron cut output") == ["XOM", "CVX"]


def test_editable_alias_list(tmp_path):
    csv_path = tmp_path / "aliases.csv"
    csv_path.write_text("ticker,name,aliases\nACME,Acme,Acme Corp;Acme Widgets\n")
    ext = EntityExtractor(csv_path)
    assert ext.extract("Acme Widgets recalls products; Apple unaffected") == ["ACME"]
