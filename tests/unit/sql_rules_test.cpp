// The SQL rules of ext/run_sql.h checked against the schema that the
// migrations of sql/ create, so that the two cannot drift apart.
#include "run_sql.h"
#include "unit_helpers.h"

namespace {

using namespace runs_test;

class SqlRules : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion); }
  TestDb db;
};

// The statements spell an active run's predicate exactly as the partial
// index runs_one_active does, as read back from the migrated schema.
TEST_F(SqlRules, TheActivePredicateIsThePartialIndexes) {
  const std::optional<std::string> index =
      db.value("SELECT sql FROM main.sqlite_schema WHERE type = 'index' AND name = 'runs_one_active'");
  ASSERT_TRUE(index);
  const std::string::size_type where = index->rfind(" WHERE ");
  ASSERT_NE(where, std::string::npos) << *index;
  EXPECT_EQ(index->substr(where + 7), runs::kActivePredicate.view());
}

// And so the planner serves an active-run lookup from the index.
TEST_F(SqlRules, ALookupWithTheActivePredicateUsesTheIndex) {
  const std::string lookup = "SELECT id FROM main.runs WHERE concurrency_key = ?1 AND " +
                             std::string(runs::kActivePredicate.view());
  EXPECT_EQ(rows(db, "EXPLAIN QUERY PLAN " + lookup).at(0).at(3),
            "SEARCH main.runs USING INDEX runs_one_active (concurrency_key=?)");
}

}  // namespace
