-- 683,788 census-like trees and 132 species, generated in SQL for the API benchmark.
--
-- Deterministic: every "random" number is a hash of the row number (hashint8), so two loads
-- give identical tables whatever plan Postgres picks. The distributions follow the real 2015
-- census closely enough for the query plans to match: borough and status shares as published,
-- a Zipf-like species mix (the top species is ~14% of living trees), a skewed trunk diameter,
-- points spread over each borough's bounding box, and a few hundred street names.
-- Run on an empty, migrated database; %(rows)s is the number of trees.

-- A uniform draw in [0, 1) for row i, draw k. A plain SQL function, so Postgres inlines it.
CREATE FUNCTION pg_temp.draw(i bigint, k int) RETURNS float8 IMMUTABLE LANGUAGE sql
    AS $$ SELECT (hashint8(i * 32 + k) & 2147483647)::float8 / 2147483648 $$;

INSERT INTO trees_species (id, latin_name, common_name)
SELECT n,
       coalesce(known.latin, 'Genus' || n || ' species' || n),
       coalesce(known.common, 'tree species ' || n)
FROM generate_series(1, 132) AS n
LEFT JOIN (VALUES
    (1, 'Platanus x acerifolia', 'London planetree'), (2, 'Gleditsia triacanthos var. inermis', 'honeylocust'),
    (3, 'Pyrus calleryana', 'Callery pear'), (4, 'Quercus palustris', 'pin oak'),
    (5, 'Acer platanoides', 'Norway maple'), (6, 'Tilia cordata', 'littleleaf linden'),
    (7, 'Prunus', 'cherry'), (8, 'Zelkova serrata', 'Japanese zelkova'),
    (9, 'Ginkgo biloba', 'ginkgo'), (10, 'Styphnolobium japonicum', 'Sophora'),
    (11, 'Acer rubrum', 'red maple'), (12, 'Tilia tomentosa', 'silver linden'),
    (13, 'Quercus rubra', 'northern red oak'), (14, 'Acer saccharinum', 'silver maple'),
    (15, 'Malus', 'crab apple'), (16, 'Tilia americana', 'American linden'),
    (17, 'Quercus bicolor', 'swamp white oak'), (18, 'Ulmus americana', 'American elm'),
    (19, 'Liquidambar styraciflua', 'sweetgum'), (20, 'Fraxinus pennsylvanica', 'green ash')
) AS known (id, latin, common) ON known.id = n;
SELECT setval(pg_get_serial_sequence('trees_species', 'id'), 132);

INSERT INTO trees_tree (
    tree_id, block_id, surveyed_on, tree_dbh, stump_diam, curb_loc, status, health, species_id,
    steward, guards, sidewalk, user_type, problems,
    root_stone, root_grate, root_other, trunk_wire, trnk_light, trnk_other,
    brch_light, brch_shoe, brch_other,
    address, zipcode, zip_city, community_board, borocode, borough, cncldist, st_assem,
    st_senate, nta, nta_name, boro_ct, state, latitude, longitude, x_sp, y_sp,
    council_district, census_tract, bin, bbl, socrata_id, socrata_updated_at
)
SELECT
    tree_id, block_id, surveyed_on,
    CASE WHEN status = 'Stump' THEN 0 ELSE dbh END,
    CASE WHEN status = 'Stump' THEN dbh ELSE 0 END,
    curb_loc, status,
    CASE WHEN status = 'Alive' THEN health ELSE '' END,
    CASE WHEN status = 'Alive' THEN species_id END,
    CASE WHEN status = 'Alive' THEN steward ELSE '' END,
    CASE WHEN status = 'Alive' THEN guards ELSE '' END,
    CASE WHEN status = 'Alive' THEN sidewalk ELSE '' END,
    user_type, problems,
    problems LIKE '%Stones%', problems LIKE '%MetalGrates%', problems LIKE '%RootOther%',
    problems LIKE '%WiresRope%', problems LIKE '%TrunkLights%', problems LIKE '%TrunkOther%',
    problems LIKE '%BranchLights%', problems LIKE '%Sneakers%', problems LIKE '%BranchOther%',
    address, zipcode, zip_city, borocode * 100 + district, borocode, borough, council,
    23 + (pg_temp.draw(i, 9) * 65)::int, 10 + (pg_temp.draw(i, 9) * 53)::int,
    nta, 'Neighborhood ' || nta, borocode * 1000000 + tract, 'New York', latitude, longitude,
    -- A local linear stand-in for NY State Plane feet: right order of magnitude, monotone.
    round((1000000 + (longitude + 74.0) * 277000)::numeric, 3)::float8,
    round((200000 + (latitude - 40.7) * 364000)::numeric, 3)::float8,
    council, tract, borocode * 1000000 + block_id % 999999,
    borocode * 1000000000::bigint + block_id * 1000 + 1,
    'row-bench~' || tree_id, timestamptz '2017-02-16 12:00:00+00'
FROM (
    SELECT
        i + 3 AS tree_id,
        100000 + (pg_temp.draw(i, 1) * 400000)::int AS block_id,
        date '2015-05-19' + (pg_temp.draw(i, 2) * 520)::int AS surveyed_on,
        -- Gamma(2) trunk diameters: median ~9 in, a long tail past 40 in, like the census.
        1 + floor(5.5 * (-ln(1 - pg_temp.draw(i, 3)) - ln(1 - pg_temp.draw(i, 4))))::int AS dbh,
        CASE WHEN pg_temp.draw(i, 5) < 0.96 THEN 'OnCurb' ELSE 'OffsetFromCurb' END AS curb_loc,
        CASE WHEN pg_temp.draw(i, 6) < 0.9538 THEN 'Alive' WHEN pg_temp.draw(i, 6) < 0.9796 THEN 'Stump' ELSE 'Dead' END
            AS status,
        CASE WHEN pg_temp.draw(i, 7) < 0.811 THEN 'Good' WHEN pg_temp.draw(i, 7) < 0.959 THEN 'Fair' ELSE 'Poor' END
            AS health,
        -- Zipf-like: P(rank k) ~ ln((k+1)/k) / ln(133).
        least(132, floor(exp(pg_temp.draw(i, 8) * ln(133)))::int) AS species_id,
        CASE WHEN pg_temp.draw(i, 10) < 0.74 THEN 'None' WHEN pg_temp.draw(i, 10) < 0.95 THEN '1or2'
             WHEN pg_temp.draw(i, 10) < 0.99 THEN '3or4' ELSE '4orMore' END AS steward,
        CASE WHEN pg_temp.draw(i, 11) < 0.87 THEN 'None' WHEN pg_temp.draw(i, 11) < 0.95 THEN 'Helpful'
             WHEN pg_temp.draw(i, 11) < 0.98 THEN 'Harmful' ELSE 'Unsure' END AS guards,
        CASE WHEN pg_temp.draw(i, 12) < 0.71 THEN 'NoDamage' ELSE 'Damage' END AS sidewalk,
        CASE WHEN pg_temp.draw(i, 13) < 0.45 THEN 'TreesCount Staff' WHEN pg_temp.draw(i, 13) < 0.78 THEN 'Volunteer'
             ELSE 'NYC Parks Staff' END AS user_type,
        CASE WHEN pg_temp.draw(i, 14) < 0.65 THEN 'None'
             ELSE (ARRAY['Stones', 'BranchLights', 'Stones,BranchLights', 'RootOther',
                         'MetalGrates', 'WiresRope', 'TrunkOther', 'Sneakers', 'BranchOther',
                         'Stones,WiresRope', 'RootOther,TrunkOther', 'TrunkLights'])
                  [1 + floor(pg_temp.draw(i, 15) * 12)::int] END AS problems,
        (1 + floor(pg_temp.draw(i, 16) * 250)::int)::text || ' ' ||
            CASE WHEN pg_temp.draw(i, 17) < 0.7
                 THEN (1 + floor(pg_temp.draw(i, 18) * 220)::int)::text || ' ' ||
                      (ARRAY['STREET', 'AVENUE', 'ROAD', 'PLACE', 'DRIVE'])[1 + floor(pg_temp.draw(i, 19) * 5)::int]
                 ELSE (ARRAY['BROADWAY', 'BAY RIDGE PARKWAY', 'OCEAN PARKWAY', 'QUEENS BOULEVARD',
                             'GRAND CONCOURSE', 'RICHMOND TERRACE', 'HYLAN BOULEVARD',
                             'ATLANTIC AVENUE', 'NORTHERN BOULEVARD', 'JAMAICA AVENUE',
                             'FLATBUSH AVENUE', 'MYRTLE AVENUE', 'AMSTERDAM AVENUE',
                             'LEXINGTON AVENUE', 'VICTORY BOULEVARD', 'FOREST AVENUE',
                             'PELHAM PARKWAY', 'FORDHAM ROAD', 'UNION TURNPIKE',
                             'HILLSIDE AVENUE', 'KINGS HIGHWAY', 'CHURCH AVENUE',
                             'CONEY ISLAND AVENUE', 'METROPOLITAN AVENUE', 'ROOSEVELT AVENUE',
                             'ASTORIA BOULEVARD', 'RIVERSIDE DRIVE', 'WEST END AVENUE',
                             'BEDFORD AVENUE', 'NOSTRAND AVENUE', 'FRANCIS LEWIS BOULEVARD',
                             'WOODHAVEN BOULEVARD', 'CROSS BAY BOULEVARD', 'ARTHUR KILL ROAD',
                             'AMBOY ROAD', 'TREMONT AVENUE', 'WHITE PLAINS ROAD',
                             'JEROME AVENUE', 'PROSPECT PARK WEST', 'EASTERN PARKWAY'])
                      [1 + floor(pg_temp.draw(i, 18) * 40)::int] END AS address,
        b.borocode, b.borough, b.zip_city,
        (b.zip_first + floor(pg_temp.draw(i, 20) * b.zip_count)::int)::text AS zipcode,
        1 + floor(pg_temp.draw(i, 21) * 18)::int AS district,
        1 + floor(pg_temp.draw(i, 22) * 51)::int AS council,
        b.nta_prefix || lpad((1 + floor(pg_temp.draw(i, 23) * 40)::int)::text, 2, '0') AS nta,
        100 + floor(pg_temp.draw(i, 24) * 90000)::int AS tract,
        round((b.lat_min + pg_temp.draw(i, 25) * (b.lat_max - b.lat_min))::numeric, 8)::float8 AS latitude,
        round((b.lon_min + pg_temp.draw(i, 26) * (b.lon_max - b.lon_min))::numeric, 8)::float8 AS longitude,
        i
    FROM (
        SELECT i FROM generate_series(1, %(rows)s) AS i
    ) AS draws
    -- Borough shares of the 2015 census; each borough's points fill its bounding box.
    JOIN (VALUES
        (4, 'Queens', 'Jamaica', 11354, 340, 'QN', 0.0000, 0.3664, 40.55, 40.79, -73.96, -73.71),
        (3, 'Brooklyn', 'Brooklyn', 11201, 39, 'BK', 0.3664, 0.6257, 40.58, 40.73, -74.03, -73.87),
        (5, 'Staten Island', 'Staten Island', 10301, 14, 'SI', 0.6257, 0.7797, 40.51, 40.64, -74.24, -74.06),
        (2, 'Bronx', 'Bronx', 10451, 25, 'BX', 0.7797, 0.9043, 40.81, 40.90, -73.92, -73.78),
        (1, 'Manhattan', 'New York', 10001, 280, 'MN', 0.9043, 1.0001, 40.70, 40.87, -74.01, -73.92)
    ) AS b (borocode, borough, zip_city, zip_first, zip_count, nta_prefix, share_from, share_to,
            lat_min, lat_max, lon_min, lon_max)
      ON pg_temp.draw(draws.i, 27) >= b.share_from AND pg_temp.draw(draws.i, 27) < b.share_to
) AS rows;
